"""``hegui serve`` (the gateway) and ``hegui demo`` (the gateway on embedded defaults)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import typer

from hegui.errors import UserError

DEMO_KEY = "sk-hegui-demo"
DEMO_ADMIN_KEY = "sk-hegui-demo-admin"
DEMO_ACCOUNT = "acc_demo"
DEMO_AGREEMENT_VERSION = "demo-1"
DEMO_STAFF = "demo-reviewer"
DEMO_STAFF_PASSWORD = "hegui-demo-console"
"""The demo's console login (an admin, so every console page can be tried); printed in the banner."""
DEMO_AGREEMENT_EFFECTIVE = "2025-01-01"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _check_port(host: str, port: int) -> None:
    """Fail with one line before uvicorn does with a traceback-ish log."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _load(config: Path | None) -> Any:
    from hegui.config import load_config

    return load_config(config)


def require_salts(cfg: Any, environ: Any = None) -> None:
    """Hashes of personal data are only as private as their salt: refuse to serve without real ones.

    Without ``$HEGUI_PII_SALT`` evidence ids and hashed masks use a public development salt, and
    without ``$HEGUI_IDENTIFIER_SALT`` identifiers are hashed with a salt kept in the database they
    protect. ``hegui demo`` and a config with ``gateway.allow_development_salts: true`` accept that."""
    env = os.environ if environ is None else environ
    missing = [name for name in (cfg.pii.hash_salt_env, cfg.ledger.identifier_salt_env) if not env.get(name)]
    if missing and not cfg.gateway.allow_development_salts:
        names = " and ".join(f"${m}" for m in missing)
        raise UserError(f"{cfg.source}: {names} not set: hegui serve needs secret salts for hashing personal "
                        "data (or gateway.allow_development_salts: true for development)")


def serve(
    config: Path | None = typer.Option(None, "--config", "-c", help="hegui.yaml to use (default: embedded defaults).",
                                       exists=False, dir_okay=False),
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: gateway.host)."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port to listen on (default: gateway.port)."),
    workers: int | None = typer.Option(None, "--workers", "-w", min=1, max=64,
                                       help="Worker processes (default: gateway.workers)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level: debug, info, warning, error."),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log", help="Log every request line."),
) -> None:
    """Run the OpenAI-compatible gateway: moderation on inputs and streamed outputs, a ledger record per check."""
    import uvicorn

    if log_level not in LOG_LEVELS:
        raise UserError(f"--log-level: {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    cfg = _load(config)
    require_salts(cfg)
    host = host or cfg.gateway.host
    port = cfg.gateway.port if port is None else port
    workers = workers or cfg.gateway.workers
    _check_port(host, port)
    common: dict[str, Any] = {"host": host, "port": port, "log_level": log_level, "access_log": access_log,
                              "timeout_graceful_shutdown": 10}
    if workers == 1:
        from hegui.gateway.app import create_app

        app = create_app(cfg)
        gw = app.state.gateway
        detectors = ", ".join(d.name for d in gw.moderator.detectors) or "none"
        typer.echo(f"hegui gateway on http://{host}:{port}/v1 (config: {cfg.source}; ledger: {gw.ledger.url}; "
                   f"detectors: {detectors})", err=True)
        uvicorn.run(app, **common)
        return
    # Several processes: migrate the ledger once here (not racing in every worker), then let each
    # worker build its own app from the same file. Counters go to a shared multiprocess folder.
    from hegui.gateway.app import CONFIG_ENV, check_scenes, check_upstreams, open_ledger
    from hegui.gateway.metrics import MULTIPROC_ENV
    from hegui.moderation import Moderator

    check_upstreams(cfg)
    check_scenes(cfg, Moderator.from_config(cfg))
    open_ledger(cfg).close()
    if config is not None:
        os.environ[CONFIG_ENV] = str(config.resolve())
    else:
        os.environ.pop(CONFIG_ENV, None)
    own_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        own_dir = tempfile.mkdtemp(prefix="hegui-metrics-")
        os.environ[MULTIPROC_ENV] = own_dir
    typer.echo(f"hegui gateway on http://{host}:{port}/v1 with {workers} workers (config: {cfg.source})", err=True)
    try:
        uvicorn.run("hegui.gateway.app:create_app_from_env", factory=True, workers=workers, **common)
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)


def demo_banner(url: str, folder: Path) -> str:
    return f"""
hegui demo gateway: {url}/v1   (demo model: hegui-demo, ledger: {folder / 'demo.db'})
API key: {DEMO_KEY}    admin key: {DEMO_ADMIN_KEY}

  curl {url}/v1/chat/completions -H 'Authorization: Bearer {DEMO_KEY}' \\
       -H 'Content-Type: application/json' \\
       -d '{{"model": "hegui-demo", "stream": true, "messages": [{{"role": "user", "content": "你好"}}]}}'

  python -c '
from openai import OpenAI
c = OpenAI(base_url="{url}/v1", api_key="{DEMO_KEY}")
r = c.chat.completions.create(model="hegui-demo", messages=[{{"role": "user", "content": "/say 我的电话是13812345678"}}])
print(r.choices[0].message.content, r.model_extra["hegui"])'

The demo model answers "/say TEXT" with exactly TEXT, so you can watch output moderation at work.

Register a person by SMS code (the demo's SMS sender prints the code here, as "hegui.sms: SMS to 138****8000: code …"),
then accept the demo agreements ({DEMO_AGREEMENT_VERSION}) and chat with the key you got:

  curl -s {url}/v1/hegui/otp -H 'Content-Type: application/json' -d '{{"phone": "13800138000", "purpose": "register"}}'
  curl -s {url}/v1/hegui/register -H 'Content-Type: application/json' -d '{{"phone": "13800138000", "code": "CODE"}}'
  for k in service privacy; do curl -s {url}/v1/hegui/agreements/accept -H 'Authorization: Bearer KEY' -H 'Content-Type: application/json' -d '{{"kind": "'$k'", "version": "{DEMO_AGREEMENT_VERSION}"}}'; done

Portal (complaints, reports, personal-information requests): {url}/about
Cases: hegui cases list --url sqlite:///{folder / 'demo.db'}   (reply: hegui cases reply ID TEXT --url …)
Console (review queue, cases, accounts, lexicon): {url}/console   login: {DEMO_STAFF} / {DEMO_STAFF_PASSWORD}

Metrics: {url}/metrics   Ready: {url}/readyz   Ledger: hegui ledger decisions --url sqlite:///{folder / 'demo.db'}
Press Ctrl-C to stop.
"""


def publish_demo_agreements(ledger: Any) -> None:
    """The demo's service agreement and privacy policy (``hegui/data/agreements/*-demo.md``), published
    as version ``demo-1`` (a no-op when the demo ledger has them already)."""
    from importlib.resources import files

    from hegui.accounts.store import AccountStore

    store = AccountStore(ledger)
    folder = files("hegui") / "data" / "agreements"
    for kind in ("service", "privacy"):
        text = (folder / f"{kind}-demo.md").read_text(encoding="utf-8")
        store.publish_agreement(kind, DEMO_AGREEMENT_VERSION, DEMO_AGREEMENT_EFFECTIVE, text, actor="hegui demo")


def ensure_demo_staff(ledger: Any, cfg: Any) -> None:
    """The demo's console login (a no-op when the demo ledger has it already)."""
    from hegui.web.staff import StaffStore

    store = StaffStore(ledger, cfg.console)
    if store.get(DEMO_STAFF) is None:
        store.create(DEMO_STAFF, DEMO_STAFF_PASSWORD, "admin", display_name="Demo reviewer", actor="hegui demo")


def show_sms_log() -> None:
    """The log SMS sender writes the codes to ``hegui.sms`` at WARNING: print them on stderr (uvicorn,
    at log level warning, configures only its own loggers)."""
    import logging
    import sys

    sms = logging.getLogger("hegui.sms")
    if not any(getattr(h, "hegui_demo", False) for h in sms.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("hegui.sms: %(message)s"))
        handler.hegui_demo = True  # type: ignore[attr-defined]
        sms.addHandler(handler)
    sms.setLevel(logging.WARNING)
    sms.propagate = False


def demo(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(8000, "--port", "-p", help="Port to listen on."),
    folder: Path = typer.Option(Path(tempfile.gettempdir()) / "hegui-demo", "--dir", file_okay=False,
                                help="Folder for the demo ledger (SQLite)."),
    config: Path | None = typer.Option(None, "--config", "-c", dir_okay=False,
                                       help="Take lexicons and policy from this hegui.yaml (upstream and ledger stay demo)."),
    token_delay_ms: float = typer.Option(20.0, "--token-delay-ms", min=0, help="Pause between streamed demo tokens."),
) -> None:
    """Run the gateway on SQLite with the built-in demo model and the demo API key, until Ctrl-C."""
    import uvicorn

    from hegui.gateway.app import create_app
    from hegui.gateway.config import UpstreamConfig
    from hegui.ledger.store import Ledger

    cfg = _load(config)
    _check_port(host, port)
    folder.mkdir(parents=True, exist_ok=True)
    cfg.upstreams = [UpstreamConfig(name="demo", base_url="demo", token_delay_ms=token_delay_ms)]
    cfg.gateway.admin_key = DEMO_ADMIN_KEY
    cfg.cases.attachments_dir = str(folder / "attachments")
    ledger = Ledger.open(f"sqlite:///{folder / 'demo.db'}", config=cfg.ledger)
    try:
        ledger.ensure_account(DEMO_ACCOUNT, name="demo")
        ledger.ensure_api_key(DEMO_ACCOUNT, DEMO_KEY, name="demo key")
        publish_demo_agreements(ledger)
        ensure_demo_staff(ledger, cfg)
        show_sms_log()
        app = create_app(cfg, ledger=ledger)
        typer.echo(demo_banner(f"http://{host}:{port}", folder))
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        ledger.close()


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("serve")(serve)
    app.command("demo")(demo)
