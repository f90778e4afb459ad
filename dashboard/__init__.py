"""The read-only learning-loop dashboard (``aloop dashboard``)."""
