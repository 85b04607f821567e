"""The HTTP edge: one Flask blueprint per concern (hooks, feedback, health; the rule pages live in
`pages/`), each view declaring its access and metric name (`access.py`); JSON is built here."""
