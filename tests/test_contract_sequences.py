"""Sequences of operations against a live server: schemathesis's stateful phase follows the
contract's links (and those it infers) from a create into the operations on what it
created, so requests reach real rows as they are created, changed and deleted. No 5xx,
every answer as documented, and nothing found again after its delete."""

import asyncio
import re
import subprocess
import sys
from pathlib import Path

from crm_api.core.scopes import Scope
from live import free_port, issue_key, ready, server_process

CLI = Path(sys.executable).with_name("schemathesis")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "use_after_free",
        "ensure_resource_availability",
    ]
)


async def test_sequences_of_operations_keep_the_contract(database_url: str, tmp_path: Path) -> None:
    key = await issue_key(database_url, Scope.ADMIN)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with server_process(database_url, port):
        await ready(base_url)
        run = await asyncio.to_thread(
            subprocess.run,
            [str(CLI), "run", f"{base_url}/openapi.json", "--phases", "stateful",
             "--header", f"Authorization: Bearer {key}", "--checks", CHECKS,
             "--max-examples", "300", "--request-timeout", "30", "--no-color"],
            capture_output=True, text=True, timeout=600, check=False,
            cwd=tmp_path,  # where the tool keeps its cache, outside the work tree
        )  # fmt: skip
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    covered = re.search(r"API Links:\s+(\d+) covered", report)
    assert covered and int(covered[1]) > 0, report[-3000:]
