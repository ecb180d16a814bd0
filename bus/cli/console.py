"""`bus console`: the liaison officer's web console over the member's own feed.

    bus console --member EUROPOL --federation federation.yaml --authority-pub authority.pub \\
        --users console-users.yaml --sasl-username europol ...     # http://127.0.0.1:8470
    bus console add-user --users console-users.yaml alice          # asks for the password

It reads `feed.<member>` as the member's own Kafka principal (the connection options),
keeps a feed index (SQLite) next to it, and serves the pages on loopback unless told
otherwise. With `--taxii` the same process serves the feed as TAXII 2.1 at `/taxii2/`
(docs/interop.md), for platforms with console accounts. Put a TLS reverse proxy in front
of it for anything but local use (docs/operators.md, "The liaison officer's console").
"""

from __future__ import annotations

import ipaddress
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from bus.cli._common import AuthorityPubOpt, DecryptKeysOpt, FederationOpt, KafkaSettings, err, fail, kafka_options, out
from bus.errors import BusError

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)

DEFAULT_PORT = 8470
DEFAULT_INDEX_DIR = Path("var/console")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.callback()
@kafka_options
def console(
    ctx: typer.Context,
    member: Annotated[str | None, typer.Option("--member", envvar="BUS_MEMBER", help="Your member id.")] = None,
    federation: FederationOpt = None,
    authority_pub: AuthorityPubOpt = None,
    decrypt_keys: DecryptKeysOpt = None,
    key: Annotated[
        Path | None, typer.Option("--key", envvar="BUS_KEY",
                                  help="The member's Ed25519 signing key (PEM), as for `bus ack`: the acknowledge "
                                       "buttons sign with it. Without it they are shown disabled.")
    ] = None,
    users: Annotated[
        Path | None, typer.Option("--users", envvar="BUS_CONSOLE_USERS",
                                  help="Users file (bus console add-user); not needed with --proxy-user-header.")
    ] = None,
    proxy_user_header: Annotated[
        str | None, typer.Option("--proxy-user-header",
                                 help="Take the signed-in officer from this header set by a trusted reverse "
                                      "proxy (e.g. X-Forwarded-User) instead of passwords.")
    ] = None,
    trusted_proxies: Annotated[
        list[str] | None, typer.Option("--trusted-proxy",
                                       help="Address or network of the reverse proxy (repeatable; default "
                                            "127.0.0.1 and ::1). Other clients are refused in proxy mode.")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = DEFAULT_PORT,
    index_path: Annotated[
        Path | None, typer.Option("--index", envvar="BUS_CONSOLE_INDEX",
                                  help="Feed index file (default var/console/<member>.feed.sqlite).")
    ] = None,
    rebuild_index: Annotated[
        bool, typer.Option("--rebuild-index", help="Delete the feed index and read the feed again from Kafka.")
    ] = False,
    feed: Annotated[
        str | None, typer.Option("--feed", help="Feed topic, if the policy names another than feed.<member>.")
    ] = None,
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies", help="Send the session cookie over HTTPS only (behind a TLS proxy).")
    ] = False,
    taxii: Annotated[
        bool, typer.Option("--taxii", help="Also serve the feed as TAXII 2.1 at /taxii2/ (read-only; clients "
                                           "authenticate like officers: HTTP Basic, or the proxy's header).")
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", envvar="BUS_LOG_LEVEL")] = "INFO",
    *,
    settings: KafkaSettings,
) -> None:
    """Serve the member's feed to its liaison officers (live list, search, alert pages)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        _serve(
            settings=settings, member=member, federation=federation, authority_pub=authority_pub,
            decrypt_keys=decrypt_keys or [], key=key, users=users, proxy_user_header=proxy_user_header,
            trusted_proxies=trusted_proxies or ["127.0.0.1", "::1"], host=host, port=port,
            index_path=index_path, rebuild_index=rebuild_index, feed=feed, secure_cookies=secure_cookies,
            taxii=taxii, log_level=log_level,
        )
    except BusError as exc:
        fail(str(exc), exc.exit_code)


def _serve(*, settings: KafkaSettings, member: str | None, federation: Path | None, authority_pub: Path | None,
           decrypt_keys: list[Path], key: Path | None, users: Path | None, proxy_user_header: str | None,
           trusted_proxies: list[str], host: str, port: int, index_path: Path | None, rebuild_index: bool,
           feed: str | None, secure_cookies: bool, taxii: bool, log_level: str) -> None:
    import uvicorn

    from bus import logs
    from bus.adapters.federation_file import WatchedDirectory
    from bus.adapters.feed_index import FeedIndex
    from bus.adapters.kafka import open_engine
    from bus.adapters.keystore import load_signing_key
    from bus.adapters.schema_files import default_empact_codes, default_schemas
    from bus.adapters.users_file import UsersFile
    from bus.cli._key_owner import check_signing_key
    from bus.composition import Bus
    from bus.core.models import MEMBER_ID_RE
    from bus.core.topology import FEED_TOPIC_PREFIX, console_group, feed_topic
    from bus.errors import ConfigError
    from bus.services.feed_indexer import FeedIndexer
    from bus.services.feed_verdicts import FeedVerifier
    from bus.web.console import ConsoleConfig, create_app
    from bus.web.console.auth import Authenticator, parse_networks

    if member is None:
        raise ConfigError("say whose feed to serve: --member ID (or BUS_MEMBER)")
    if not MEMBER_ID_RE.fullmatch(member):
        raise ConfigError(f"--member {member[:70]!r} is not a member id, e.g. NL-CUSTOMS")
    if federation is None or authority_pub is None:
        raise ConfigError("badges are checked against the signed trust directory: give --federation FILE "
                          "and --authority-pub PUB")
    topic = feed or feed_topic(member)
    if not topic.startswith(FEED_TOPIC_PREFIX):
        raise ConfigError(f"--feed {topic!r}: a member's feed topic starts with {FEED_TOPIC_PREFIX!r}")
    if proxy_user_header is None:
        if users is None:
            raise ConfigError("officers sign in with accounts from --users FILE (create them with "
                              "`bus console add-user`), or give --proxy-user-header behind a reverse proxy")
        users_file: UsersFile | None = UsersFile(users)
        assert users_file is not None
        if not users_file.users():
            raise ConfigError(f"users file {users} has no users yet: add one with "
                              f"`bus console add-user --users {users} NAME`")
    else:
        users_file = None
    try:
        networks = parse_networks(trusted_proxies)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    signer = None
    if key is not None:  # refuse another member's key now, not at an officer's first click
        signer = load_signing_key(key, member)
        check_signing_key(signer, key, member, federation, authority_pub)

    logs.configure(level=log_level)
    directory = WatchedDirectory(federation, authority_pub)
    decryptor = _decryptor(decrypt_keys, member)
    path = index_path or DEFAULT_INDEX_DIR / f"{member.lower()}.feed.sqlite"
    if rebuild_index:
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
    index = FeedIndex(path, topic)
    verifier = FeedVerifier(directory.current, decryptor, default_schemas(), default_empact_codes())
    user = settings.sasl_username or member.lower()
    engine = open_engine(settings)
    indexer = FeedIndexer(engine, topic, index, verifier, group_id=console_group(user))
    indexer.open()  # refused, unreachable, bad credentials: say so now, with the error's exit code

    auth = Authenticator(users=users_file, proxy_header=proxy_user_header, trusted_proxies=networks)
    config = ConsoleConfig(member=member, topic=topic, auth=auth, session_secret=secrets.token_urlsafe(32),
                           secure_cookies=secure_cookies)
    stop = threading.Event()
    workers = [threading.Thread(target=indexer.run, args=(stop,), name="feed-indexer", daemon=True)]
    mounts: dict[str, Any] = {}
    wake = threading.Event()
    if taxii:
        from bus.services.taxii.feed import StixFeed
        from bus.web.taxii import TaxiiAuth, TaxiiConfig, create_taxii_app

        stix_feed = StixFeed(index, default_empact_codes())
        mounts["/taxii2"] = create_taxii_app(TaxiiConfig(member=member), stix_feed, TaxiiAuth(auth))
        indexer.subscribe(lambda _last_id: wake.set())  # new records: list their STIX objects at once
        workers.append(threading.Thread(target=stix_feed.run, args=(stop, wake), name="taxii-listing", daemon=True))
    acknowledger = None if signer is None else Bus(settings, engine=engine).console_acknowledger(signer, feed=topic)
    web = create_app(config, index, indexer, acknowledger, mounts=mounts)
    for worker in workers:
        worker.start()

    server = uvicorn.Server(uvicorn.Config(web, host=host, port=port, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=3, lifespan="on"))

    def stop_serving(signum: int, frame: Any) -> None:
        web.state.close_streams()  # open live pages would otherwise hold the shutdown up
        server.should_exit = True

    # The server runs in a thread so that SIGTERM/SIGINT stay ours: a clean stop exits 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_serving)
    serving = threading.Thread(target=server.run, name="console-web")
    who = settings.sasl_username or "an unauthenticated client"
    err.print(f"console for {member}: http://{host if ':' not in host else f'[{host}]'}:{port}/ "
              f"(feed {topic} read as {who}; index {path})", highlight=False, soft_wrap=True)
    if signer is None:
        err.print("acknowledge buttons disabled: no --key (the member's signing key)", highlight=False)
    else:
        err.print(f"acknowledgements signed as {member} with key {signer.key_id}", highlight=False)
    if taxii:
        from bus.web.taxii import api_root_name

        err.print(f"TAXII 2.1: discovery /taxii2/, API root /taxii2/{api_root_name(member)}/", highlight=False)
    if not _loopback(host):
        err.print("[yellow]warning:[/] listening beyond loopback: serve it through a TLS reverse proxy "
                  "(docs/operators.md)", highlight=False)
    serving.start()
    try:
        while serving.is_alive():
            serving.join(0.5)
    finally:
        stop.set()
        wake.set()
        for worker in workers:
            worker.join(timeout=10)
        if acknowledger is not None:
            acknowledger.close()
        index.close()
    if not server.started:
        raise BusError(f"could not listen on {host}:{port} (in use, or not an address of this host)")


def _decryptor(paths: list[Path], member: str) -> Any:
    if not paths:
        return None
    from bus.adapters.keystore import load_decryption_key
    from bus.core.confidential import Decryptor

    return Decryptor.of(load_decryption_key(p, member) for p in paths)


@app.command("add-user")
def add_user(
    name: Annotated[str, typer.Argument(help="The officer's user name.")],
    users: Annotated[Path, typer.Option("--users", envvar="BUS_CONSOLE_USERS", help="Users file (created 0600).")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (first line).")
    ] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Set a new password for an existing user.")] = False,
) -> None:
    """Add a console user (argon2id hash in a 0600 file); the password is asked for, never an argument."""
    from bus.adapters.users_file import UsersFile, check_password

    try:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        check_password(password)
        new = UsersFile(users).add(name, password, replace=replace)
    except BusError as exc:
        fail(str(exc), exc.exit_code)
    out.print(f"{'added' if new else 'updated'} console user {name} in {users}", highlight=False)


@app.command("remove-user")
def remove_user(
    name: Annotated[str, typer.Argument(help="The officer's user name.")],
    users: Annotated[Path, typer.Option("--users", envvar="BUS_CONSOLE_USERS", help="Users file.")],
) -> None:
    """Remove a console user; their open sessions end at their next request."""
    from bus.adapters.users_file import UsersFile

    try:
        UsersFile(users).remove(name)
    except BusError as exc:
        fail(str(exc), exc.exit_code)
    out.print(f"removed console user {name} from {users}", highlight=False)


__all__ = ["app"]
