"""Images for training and evaluation: the embedded photos, image files, patches and noise."""
