"""Trainer mode: replay a recorded period or a scripted scenario on an
isolated training bus (``install``), played at the trainer's pace
(``player``, ``sources``), worked by trainees and scored (``session``)."""
