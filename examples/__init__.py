"""Runnable examples: a user's own U-Net brought to the toolchain (see the README, *Bring your own U-Net*)."""
