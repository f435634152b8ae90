"""A Spoke connector in Python for the fictional vendor "Acme Items".

Built with componentize-py against the `connector` world of
spoke:connector@0.1.0; see README.md for the one build command.

componentize-py looks for a class named `WitWorld` in the module named on
its command line (`app`): its methods are the world's exports. An error is
returned by raising `Err(Error(...))`; any other exception is a crash the
host reports as an `internal` error.
"""
import json

from componentize_py_types import Err
from wit_world import WitWorld as _World
from wit_world.imports import auth, http, log
from wit_world.imports.events import Event, Received
from wit_world.imports.manifest import (
    AuthMethod_Headers,
    AuthScheme,
    BaseUrl,
    Manifest,
    Operation,
    RatePolicy,
    WebhookTopic,
    Window,
)
from wit_world.imports.types import Error, ErrorKind, Method

# The connector's name: `plugin = "..."` in spoke.toml and the prefix of its
# webhook route (/hooks/NAME). `spoke new` replaces it.
NAME = "pyexample"
VERSION = "0.1.0"

LIST_ITEMS_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["open", "done"]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    "additionalProperties": False,
}
CREATE_ITEM_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "quantity": {"type": "integer", "minimum": 1}},
    "additionalProperties": False,
}


def error(kind, message, field=None, status=None, vendor_code=None, retry_after_ms=None):
    """The WIT `error` record, raised as `Err(...)` so invoke returns it."""
    return Err(Error(kind=kind, message=message, vendor_code=vendor_code, field=field, retry_after_ms=retry_after_ms, status=status))


def kind_for_status(status):
    """The default mapping of a vendor's HTTP status to an error kind; a 400/422 is `vendor`, since the request was sent."""
    return {401: ErrorKind.UNAUTHORIZED, 403: ErrorKind.FORBIDDEN, 404: ErrorKind.NOT_FOUND, 409: ErrorKind.CONFLICT, 429: ErrorKind.RATE_LIMITED}.get(
        status, ErrorKind.VENDOR
    )


def parse_input(text, schema):
    """Refuse input the schema would refuse (type, required, enum, bounds), naming the field; nothing is sent."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise error(ErrorKind.INVALID_INPUT, f"the input is not JSON: {e}")
    if not isinstance(value, dict):
        raise error(ErrorKind.INVALID_INPUT, "the input must be a JSON object")
    props = schema.get("properties", {})
    for field in schema.get("required", []):
        if field not in value:
            raise error(ErrorKind.INVALID_INPUT, f"{field} is required", field=field)
    for field, v in value.items():
        rule = props.get(field)
        if rule is None:
            if schema.get("additionalProperties") is False:
                raise error(ErrorKind.INVALID_INPUT, f"{field} is not a known field (known: {', '.join(props)})", field=field)
            continue
        want = rule.get("type")
        ok = {"string": isinstance(v, str), "integer": isinstance(v, int) and not isinstance(v, bool)}.get(want, True)
        if not ok:
            raise error(ErrorKind.INVALID_INPUT, f"{field} must be a {want}, got {json.dumps(v)}", field=field)
        if "enum" in rule and v not in rule["enum"]:
            raise error(ErrorKind.INVALID_INPUT, f"{field} must be one of {', '.join(json.dumps(x) for x in rule['enum'])}", field=field)
        if "minimum" in rule and v < rule["minimum"] or "maximum" in rule and v > rule["maximum"]:
            raise error(ErrorKind.INVALID_INPUT, f"{field} must be between {rule.get('minimum')} and {rule.get('maximum')}", field=field)
        if "minLength" in rule and len(v) < rule["minLength"]:
            raise error(ErrorKind.INVALID_INPUT, f"{field} must not be empty", field=field)
    return value


def send(method, path, query=(), body=None):
    """One request to the vendor through the host; a non-2xx answer becomes an error with the vendor's own message."""
    headers = [("accept", "application/json")]
    if body is not None:
        headers.append(("content-type", "application/json"))
        body = json.dumps(body).encode()
    resp = http.send(http.Request(method=method, path=path, query=list(query), headers=headers, body=body, auth=["api-key"]))
    if resp.status // 100 != 2:
        try:
            message = json.loads(resp.body).get("error") or resp.body.decode(errors="replace")
        except (ValueError, AttributeError):
            message = resp.body.decode(errors="replace")
        retry = None
        for name, value in resp.headers:
            if name == "retry-after" and value.strip().isdigit():
                retry = int(value.strip()) * 1000
        raise error(kind_for_status(resp.status), f"acme answered {resp.status}: {message}", status=resp.status, vendor_code=str(resp.status), retry_after_ms=retry)
    try:
        return json.loads(resp.body)
    except ValueError:
        raise error(ErrorKind.INTERNAL, f"acme answered {resp.status} with a body that is not JSON: {resp.body[:200]!r}", status=resp.status)


def list_items(input):
    query = [(k, str(input[k])) for k in ("status", "limit") if k in input]
    answer = send(Method.GET, "/items", query)
    # Lenient reading: once the vendor answered 2xx, a missing list is an empty one.
    items = answer.get("items") if isinstance(answer, dict) else answer
    return {"items": items or []}


def create_item(input):
    return send(Method.POST, "/items", body={"name": input["name"], "quantity": input.get("quantity", 1)})


# operation name -> (method, path, description, input schema, handler, idempotent)
OPERATIONS = {
    "list_items": (Method.GET, "/items", "Items, optionally by status", LIST_ITEMS_SCHEMA, list_items, True),
    "create_item": (Method.POST, "/items", "Create an item", CREATE_ITEM_SCHEMA, create_item, False),
}


class WitWorld(_World):
    def describe(self) -> Manifest:
        return Manifest(
            name=NAME,
            version=VERSION,
            vendor="Acme Items",
            description="Example connector written in Python (componentize-py)",
            base_urls=[BaseUrl(key="default", url="https://api.acme.example")],
            auth_schemes=[AuthScheme(name="api-key", description="the X-Api-Key header", method=AuthMethod_Headers([("x-api-key", "api_key")]), optional=False)],
            rate_policies=[RatePolicy(name="general", description="60 requests per minute", operations=[], windows=[Window(limit=60, seconds=60)], headers=[], penalty_seconds=[])],
            operations=[
                Operation(name=name, description=d, method=m, path=p, input_schema=json.dumps(s), output_schema='{"type":"object"}', idempotent=idem, paged=False)
                for name, (m, p, d, s, _, idem) in OPERATIONS.items()
            ],
            webhook_topics=[WebhookTopic(name="ITEM_CHANGED", description="An item was created or changed")],
        )

    def invoke(self, operation: str, input: str) -> str:
        op = OPERATIONS.get(operation)
        if op is None:
            raise error(ErrorKind.UNSUPPORTED, f"no operation {operation!r} (known: {', '.join(OPERATIONS)})")
        _, _, _, schema, handler, _ = op
        return json.dumps(handler(parse_input(input, schema)))

    def handle_webhook(self, received: Received) -> list:
        signature = dict(received.headers).get("x-signature")
        if not signature:
            raise error(ErrorKind.UNAUTHORIZED, "no x-signature header")
        # The host holds the secret; the guest only asks whether the signature matches.
        if not auth.verify_hmac_sha256("webhook_secret", received.body, signature, auth.SignatureEncoding.HEX):
            raise error(ErrorKind.UNAUTHORIZED, "x-signature does not match the body (HMAC-SHA256 with webhook_secret)")
        try:
            body = json.loads(received.body)
            item = body["item"]
            event_id = str(body["id"])
        except (ValueError, KeyError, TypeError) as e:
            raise error(ErrorKind.INVALID_INPUT, f"the webhook body is not an Acme item event: {e!r}")
        log.log(log.Level.DEBUG, f"item event {event_id}")
        return [Event(id=event_id, topic="ITEM_CHANGED", occurred_at=body.get("at"), subject=str(item.get("id")) if isinstance(item, dict) else None, payload=json.dumps(item))]
