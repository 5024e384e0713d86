"""The application verbs: what ``cli.py`` (and a Python user) runs.

Each verb takes a frozen settings object, validated when it is made, and returns a typed report
(``to_dict()`` is its JSON); none prints. :mod:`.train` (train, convert, finetune),
:mod:`.evaluate`, :mod:`.export`, :mod:`.simulate`, :mod:`.hardware_report` (report) and
:mod:`.demo`; :mod:`.runs` is the resumable training loop train and finetune share.
"""
