"""Clients generated from the committed contract work: a Python SDK drives a customer's
journey against a live server, and TypeScript code written against the generated types
compiles. `make test` installs both generators (tests/sdk/requirements.txt, package.json).
"""

import importlib
import json
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from openapi_spec_validator import validate

from crm_api.app import create_app
from live import serve, settings_for

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi" / "openapi.json"
HERE = Path(__file__).resolve().parent
PYTHON_GENERATOR = ROOT / ".sdk-venv" / "bin" / "openapi-python-client"
NODE_BIN = HERE / "node_modules" / ".bin"
PACKAGE = "crm_client"
# Operations whose request bodies are NDJSON streams, which the generator cannot express;
# partners stream those with any HTTP client. (The export is generated: its NDJSON answer
# is the raw `content` of the detailed response.)
NDJSON_UPLOADS = {"customers_import", "interactions_import"}


def _tool(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: `make test` installs the SDK generators first")
    return path


def _operation_ids() -> set[str]:
    paths = json.loads(SPEC.read_text())["paths"]
    return {op["operationId"] for item in paths.values() for op in item.values()}


@pytest.fixture(scope="module")
def python_sdk(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    out = tmp_path_factory.mktemp("sdk")
    config = out / "config.json"
    config.write_text(json.dumps({"package_name_override": PACKAGE}))
    generated = subprocess.run(
        [str(_tool(PYTHON_GENERATOR)), "generate", "--path", str(SPEC),
         "--output-path", str(out / PACKAGE), "--meta", "none", "--config", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = generated.stdout + generated.stderr
    assert generated.returncode == 0, report
    # Every schema must be understood: a model the generator skips silently drops the
    # responses that use it from the SDK.
    assert "Unable to parse" not in report, report
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))


def test_the_contract_is_a_valid_openapi_3_1_document() -> None:
    spec = json.loads(SPEC.read_text())
    assert spec["openapi"].startswith("3.1.")
    validate(spec)


def test_the_python_sdk_has_a_function_for_every_json_operation(python_sdk: ModuleType) -> None:
    package = Path(python_sdk.__file__).parent
    generated = {module.stem for module in (package / "api").glob("*/*.py")} - {"__init__"}
    assert generated == _operation_ids() - NDJSON_UPLOADS


async def test_the_python_sdk_drives_a_purchase_from_customer_to_points_and_timeline(
    python_sdk: ModuleType, database_url: str, admin_key: str
) -> None:
    sdk = python_sdk.__name__
    models = importlib.import_module(f"{sdk}.models")
    from_sdk = importlib.import_module
    create_customer = from_sdk(f"{sdk}.api.customers.customers_create")
    get_customer = from_sdk(f"{sdk}.api.customers.customers_get")
    record = from_sdk(f"{sdk}.api.interactions.interactions_create")
    timeline = from_sdk(f"{sdk}.api.interactions.interactions_timeline")
    create_program = from_sdk(f"{sdk}.api.loyalty_programs.loyalty_programs_create")
    enrol = from_sdk(f"{sdk}.api.loyalty_accounts.loyalty_accounts_enrol")
    earn = from_sdk(f"{sdk}.api.loyalty_accounts.loyalty_accounts_earn")
    get_account = from_sdk(f"{sdk}.api.loyalty_accounts.loyalty_accounts_get")

    with serve(create_app(settings_for(database_url))) as base_url:
        client = python_sdk.AuthenticatedClient(base_url=base_url, token=admin_key)
        async with client:
            customer = await create_customer.asyncio(
                client=client,
                body=models.CustomerCreate(
                    kind=models.CustomerKind.CONSUMER,
                    email=f"customer-{uuid.uuid4().hex[:12]}@example.com",
                    first_name="Ada",
                ),
                idempotency_key=str(uuid.uuid4()),
            )
            assert isinstance(customer, models.Customer), customer
            assert customer.first_name == "Ada" and customer.version == 1

            purchase = await record.asyncio(
                client=client,
                body=models.InteractionCreate(
                    customer_id=customer.id,
                    type_=models.InteractionType.PURCHASE,
                    external_id="order-1",
                    amount=4999,
                    currency="EUR",
                    items=[models.LineItem(sku="BOOK-1", quantity=1, unit_price=4999)],
                ),
            )
            assert isinstance(purchase, models.Interaction), purchase

            program = await create_program.asyncio(
                client=client,
                body=models.ProgramCreate(name="Club", currency="EUR", points_per_unit=2),
            )
            assert isinstance(program, models.Program), program
            account = await enrol.asyncio(
                client=client,
                body=models.Enrolment(customer_id=customer.id, program_id=program.id),
            )
            assert isinstance(account, models.Account), account
            entry = await earn.asyncio(
                account.id,
                client=client,
                body=models.EarnRequest(amount=4999, currency="EUR", reference="order-1"),
            )
            assert isinstance(entry, models.Entry), entry
            assert entry.points == 99 and entry.balance_after == 99  # 49.99 EUR x 2, floored
            shown = await get_account.asyncio(account.id, client=client)
            assert shown.available == 99

            page = await timeline.asyncio(customer.id, client=client)
            assert [i.id for i in page.data] == [purchase.id]
            assert page.data[0].items[0].sku == "BOOK-1" and page.has_more is False

            missing = await get_customer.asyncio_detailed(uuid.uuid4(), client=client)
            assert missing.status_code == 404
            assert isinstance(missing.parsed, models.Problem)
            assert missing.parsed.status == 404 and missing.parsed.type_ == "/problems/not-found"


def test_typescript_written_against_the_generated_types_compiles(tmp_path: Path) -> None:
    types = tmp_path / "crm-api.d.ts"
    subprocess.run(
        [str(_tool(NODE_BIN / "openapi-typescript")), str(SPEC), "--output", str(types)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    usage = tmp_path / "usage.ts"
    usage.write_text(TYPESCRIPT_USAGE)
    compiled = subprocess.run(
        [str(_tool(NODE_BIN / "tsc")), "--noEmit", "--strict", "--target", "es2022",
         str(usage)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    # The types are strict enough to catch a wrong field: the same code with a typo fails.
    usage.write_text(TYPESCRIPT_USAGE.replace("unit_price: 4999", "unit_prize: 4999"))
    broken = subprocess.run(
        [str(NODE_BIN / "tsc"), "--noEmit", "--strict", "--target", "es2022", str(usage)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert broken.returncode != 0 and "unit_prize" in broken.stdout


TYPESCRIPT_USAGE = """
import type { components, operations, paths } from "./crm-api";

type Customer = components["schemas"]["Customer"];
type Purchase = components["schemas"]["InteractionCreate"];
type Problem = components["schemas"]["Problem"];
type TimelinePage =
  operations["interactions_timeline"]["responses"][200]["content"]["application/json"];

const purchase: Purchase = {
  customer_id: "0190f1f4-0000-7000-8000-000000000000",
  type: "purchase",
  amount: 4999,
  currency: "EUR",
  items: [{ sku: "BOOK-1", quantity: 1, unit_price: 4999 }],
};

function describe(customer: Customer, page: TimelinePage, problem: Problem): string {
  const first = page.data[0];
  return `${customer.id} ${customer.kind} ${first?.type ?? "none"} ${problem.status}`;
}

const route: keyof paths = "/v1/customers/{customer_id}/interactions";
export { describe, purchase, route };
"""
