"""The short soak: tests/soak/soak.py for about a minute with 16 clients
against its own `lamina serve` (small K/V pool, 1 MiB body limit, an API
key). Every answer must be right (pool requests exactly their reference
text and token counts, errors in the right status and shape), nothing may
hang, RSS and open fds must not grow, no K/V block may stay in use, and
SIGTERM must exit 0. The 10-minute, 64-client run is the same code:
`.venv/bin/python tests/soak/soak.py --duration 600 --clients 64`."""

import sys
from pathlib import Path

from conftest import LAMINA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "soak"))
import soak  # noqa: E402


def test_soak_short():
    # 50 s of new requests, then the ones in flight drain: about a minute of load on 2 cores;
    # 28 MiB (79 blocks) rather than 32 so that 16 clients surely run the pool short (preemption)
    cfg = soak.Config(duration=50, clients=16, binary=str(LAMINA), pool="small", kv_cache_mib=28,
                      request_timeout=120)
    summary = soak.run(cfg)
    soak.print_summary(summary)
    assert summary["passed"], "soak failed:\n" + "\n".join(summary["failures"]) + \
        f"\nserver log: {summary.get('server_log')}"
    assert summary["exit_code"] == 0
    assert summary["metrics_end"]["lamina_kv_blocks_used"] == 0
    assert summary["total_requests"] >= 50
