"""What moves a task: the context a process is wired with (``context.py``), the lease a
worker holds on its tasks (``lease.py``), the pipeline's steps (``steps.py``), the run of
one task on an engine that edits here (``run.py``) or of many followed upstream
(``relay.py``), and the janitor (``janitor.py``)."""
