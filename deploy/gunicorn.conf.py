"""Gunicorn settings for containers, read by `cds-service serve --gunicorn-config`. The address is
--host/--port (the service refuses a public address without trusted issuers); logging, the metrics
and the graceful-stop hooks are set by the service itself.

Sizing: one worker per CPU of the pod's limit is plenty (each has `threads` threads, and a hook call
mostly waits on the EHR's FHIR server); scale out with more replicas, not bigger pods.
"""

import os

workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
timeout = 30  # a hook call is bounded by fhir.deadline_seconds (3 s by default), far below this
graceful_timeout = 20  # SIGTERM: calls in flight get this long; keep below terminationGracePeriodSeconds
keepalive = 75  # longer than a load balancer's idle timeout (60 s on most), so it closes first
worker_tmp_dir = "/dev/shm"  # heartbeat files off the (read-only) root filesystem
max_requests = 20000  # recycle workers now and then; the jitter keeps them from all restarting at once
max_requests_jitter = 2000
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
