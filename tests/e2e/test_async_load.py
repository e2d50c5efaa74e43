"""A steady stream of worker-pool jobs (requests answered asynchronously: /readyz here, SCIM, sign-ins) must not
corrupt the heap. Regression: each context's multithread queue is a socket made on the main thread, and its
buffers were recycled through the main thread's (thread-local) free list from both loop threads at once; under
wrk the process died within seconds (double free, or use after free under ASan)."""
import shutil
import subprocess

import pytest


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_many_async_jobs_from_two_loops_keep_the_process_alive(make_portier):
    p = make_portier()
    for _ in range(3):
        out = subprocess.run(["wrk", "-t2", "-c16", "-d4s", p.url("/readyz")], capture_output=True, text=True,
                             timeout=60)
        assert p.proc.poll() is None, "portier died under load; log tail:\n" + p.log_text()[-3000:]
        assert "Requests/sec" in out.stdout, out.stdout + out.stderr
    assert p.get("/healthz").status_code == 200
    assert p.get("/readyz").status_code == 200
