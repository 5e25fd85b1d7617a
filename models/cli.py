"""`edgefleet model ...`: package, import, verify, inspect, keygen, list and add. (`quantize` and `bench` need the
training stack; ``edgefleet.model_cli`` composes them with this app into `edgefleet model`, leaving this app as it is.)
Exit codes: 0 ok, 1 the package or key was refused or not found, 2 `import` refused a model the agent could not
run as it is."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgefleet.paths import default_state_dir, model_registry_dir, signing_key_path, signing_public_key_path
from models.errors import PackageError
from models.manifest import Manifest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

model_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="Model packages: package, import, verify, inspect, keygen, list, add.")

StateDirOpt = Annotated[Optional[Path], typer.Option("--state-dir", help="edgefleet state directory "
                                                     "(default: $EDGEFLEET_STATE_DIR or ~/.edgefleet)")]
RegistryOpt = Annotated[Optional[Path], typer.Option("--registry", help="registry directory "
                                                     "(default: models/ in the state directory)")]


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str) -> SystemExit:
    """Print one red line on stderr; the caller raises the result. SystemExit, not typer.Exit: these commands are
    mounted in a plain click group, which does not know typer's (vendored click) exceptions."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] [red]{escape(message)}[/]")
    return SystemExit(1)


def _state(state_dir: Path | None) -> Path:
    return state_dir if state_dir is not None else default_state_dir()


def _registry_root(registry: Path | None, state_dir: Path | None) -> Path:
    return registry if registry is not None else model_registry_dir(_state(state_dir))


def _public_key_path(key: Path | None, state_dir: Path | None) -> Path:
    path = key if key is not None else signing_public_key_path(_state(state_dir))
    if not path.is_file():
        raise _fail(f"no public key at {path}: pass --key PUBKEY_PEM or run `edgefleet model keygen`")
    return path


def _manifest_table(manifest: Manifest, title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [("name", manifest.name), ("version", manifest.version), ("task", manifest.task),
            ("precision", manifest.precision), ("deployable", "yes" if manifest.deployable else "NO"),
            ("input", f"{manifest.input.shape} {manifest.input.layout} {manifest.input.color_order}"),
            ("labels", ", ".join(manifest.labels[:12]) + (" ..." if len(manifest.labels) > 12 else "")),
            ("created", manifest.created_at.isoformat())]
    if manifest.flags:
        rows.append(("flags", "; ".join(manifest.flags)))
    for key in ("accuracy", "f1_macro", "auc_macro"):
        if key in manifest.metrics:
            rows.append((key, str(manifest.metrics[key])))
    if manifest.quantization is not None:
        rows.append(("int8 delta", f"{manifest.quantization.accuracy_delta:+.2f} points"))
    rows += [(f"file {name}", digest) for name, digest in sorted(manifest.files.items())]
    for key, value in rows:
        table.add_row(key, escape(str(value)))
    return table


def _signing_key(key: Path | None, state_dir: Path | None, *, quiet: bool = False) -> "Ed25519PrivateKey":
    """The key given, else the fleet's default key, created (and said so) on first use."""
    from models.signing import key_id, load_or_create_private_key, load_private_key

    if key is not None:
        return load_private_key(key)
    default = signing_key_path(_state(state_dir))
    created = not default.exists()
    private = load_or_create_private_key(default)
    if created and not quiet:
        _out().print(f"created the fleet signing key {default} (key id {key_id(private)})")
    return private


@model_app.command("verify")
def verify_command(
    pkg: Annotated[Path, typer.Argument(help="the .efpkg file")],
    key: Annotated[Optional[Path], typer.Option("--key", help="trusted public key PEM (default: the fleet's)")] = None,
    state_dir: StateDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print {ok, error|manifest} as JSON for scripts")] = False,
) -> None:
    """Check a package's signature and every file's sha256; exit 1 naming the problem if anything is wrong."""
    from models.package import file_sha256, verify

    key_path = _public_key_path(key, state_dir)
    try:
        manifest = verify(pkg, key_path)
    except PackageError as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "error": str(exc), "kind": type(exc).__name__}))
            raise SystemExit(1) from None
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"ok": True, "sha256": file_sha256(pkg), "manifest": manifest.model_dump(mode="json")},
                              indent=2))
        return
    out = _out()
    out.print(f"[green]OK[/] {escape(pkg.name)}: {escape(manifest.name)} {escape(manifest.version)} "
              f"({manifest.precision}), signature valid, {len(manifest.files)} file(s) match")
    for name, digest in sorted(manifest.files.items()):
        out.print(f"  {escape(name)}  {digest}")


@model_app.command("inspect")
def inspect_command(
    pkg: Annotated[Path, typer.Argument(help="the .efpkg file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Show a package's manifest WITHOUT verifying it (use `verify` before trusting it)."""
    from models.package import file_sha256, read_manifest

    try:
        manifest = read_manifest(pkg)
        sha = file_sha256(pkg)
    except PackageError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        doc = {"package": {"path": str(pkg), "sha256": sha, "size": pkg.stat().st_size},
               "manifest": manifest.model_dump(mode="json")}
        typer.echo(json.dumps(doc, indent=2))
        return
    out = _out()
    out.print(_manifest_table(manifest, f"{pkg.name} (not verified)"))
    out.print(f"package sha256 {sha}, {pkg.stat().st_size} bytes")


@model_app.command("package")
def package_command(
    directory: Annotated[Path, typer.Argument(help="folder with manifest.json and the files it names")],
    out: Annotated[Path, typer.Option("--out", help="folder to write NAME-VERSION.efpkg into")],
    key: Annotated[Optional[Path], typer.Option("--key", help="private signing key PEM (default: the fleet's, "
                                                "created if missing)")] = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Sign the files of DIR into a package. manifest.json's `files` may be empty; the runtime files it names and
    any files it lists are packed, and their sha256 filled in."""
    from pydantic import ValidationError

    from models.package import pack
    from models.signing import key_id

    manifest_path = directory / "manifest.json"
    try:
        manifest = Manifest.model_validate_json(manifest_path.read_bytes())
    except FileNotFoundError:
        raise _fail(f"no manifest.json in {directory}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"{manifest_path} does not validate: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    names = set(manifest.files)
    names.add(manifest.runtimes.onnx) if manifest.runtimes.onnx else None
    if manifest.runtimes.openvino is not None:
        names |= {manifest.runtimes.openvino.xml, manifest.runtimes.openvino.bin}
    try:
        private = _signing_key(key, state_dir)
        path = pack(manifest, {name: directory / name for name in sorted(names)}, out, private)
    except PackageError as exc:
        raise _fail(str(exc)) from None
    _out().print(f"[green]wrote[/] {escape(str(path))}: {manifest.name} {manifest.version} ({manifest.precision}), "
                 f"{len(manifest.files)} file(s), signed by key {key_id(private)}")


class ImportTask(str, Enum):
    detection = "detection"
    classification = "classification"


def _refuse_import(message: str, as_json: bool, kind: str) -> SystemExit:
    """Exit 2: the model is not one the agent can run as it is (1 stays for keys and packages)."""
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message, "kind": kind}))
    else:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]refused:[/] [red]{escape(message)}[/]")
    return SystemExit(2)


@model_app.command("import")
def import_command(
    model: Annotated[Path, typer.Argument(help="MODEL.onnx, or MODEL.xml with MODEL.bin beside it")],
    task: Annotated[Optional[ImportTask], typer.Option("--task", help="what the model does, when its own "
                                                       "metadata does not say (Ultralytics exports do)")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="class names, one per line (or a JSON list); "
                                                   "override the model's own")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="package name (default: the file's stem)")] = None,
    version: Annotated[str, typer.Option("--version", help="package version")] = "1.0.0",
    key: Annotated[Optional[Path], typer.Option("--key", help="private signing key PEM (default: the fleet's, "
                                                "created if missing)")] = None,
    out: Annotated[Path, typer.Option("--out", help="folder to write NAME-VERSION.efpkg into")] = Path("."),
    state_dir: StateDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print {ok, package, sha256, manifest} as JSON")] = False,
) -> None:
    """Sign a model trained elsewhere into a package. An Ultralytics export (YOLOv5/v8/11, ONNX or OpenVINO IR)
    needs no flags: labels, input size and task come from its own metadata. A model the agent could not run as it
    is (several inputs, a dynamic size, an output no decoding fits, segment/pose/obb) is refused, exit 2, and
    nothing is written."""
    from models.importer import ImportRefused, plan_import, read_labels
    from models.package import file_sha256, pack
    from models.signing import key_id

    try:
        names = read_labels(labels) if labels is not None else None
        plan = plan_import(model, task=task.value if task else None, labels=names, name=name, version=version)
    except ImportRefused as exc:
        raise _refuse_import(str(exc), as_json, "ImportRefused") from None
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    try:
        private = _signing_key(key, state_dir, quiet=as_json)
        path = pack(plan.manifest, plan.files, out, private)
    except PackageError as exc:
        raise _fail(str(exc)) from None
    manifest = plan.manifest
    if as_json:
        typer.echo(json.dumps({"ok": True, "package": str(path), "sha256": file_sha256(path),
                               "manifest": manifest.model_dump(mode="json")}, indent=2))
        return
    decoding = manifest.output.decoding + (f" ({manifest.training['yolo_head']})"
                                           if "yolo_head" in manifest.training else "")
    _out().print(f"[green]wrote[/] {escape(str(path))}: {escape(manifest.name)} {escape(manifest.version)} "
                 f"{manifest.task}, input {manifest.input.shape}, {len(manifest.labels)} labels, decoding "
                 f"{decoding}, signed by key {key_id(private)}")


@model_app.command("keygen")
def keygen_command(state_dir: StateDirOpt = None) -> None:
    """Create the fleet's model-signing key if it does not exist; print its key id and public key path."""
    from models.signing import key_id, load_or_create_private_key

    path = signing_key_path(_state(state_dir))
    existed = path.exists()
    try:
        private = load_or_create_private_key(path)
    except PackageError as exc:
        raise _fail(str(exc)) from None
    verb = "existing" if existed else "[green]created[/]"
    _out().print(f"{verb} signing key {escape(str(path))}\nkey id {key_id(private)}\n"
                 f"public key {escape(str(signing_public_key_path(_state(state_dir))))}")


@model_app.command("list")
def list_command(
    registry: RegistryOpt = None,
    name: Annotated[Optional[str], typer.Option("--name", help="only this model")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
    state_dir: StateDirOpt = None,
) -> None:
    """List the packages in the local registry."""
    from models.registry import LocalRegistry

    entries = LocalRegistry(_registry_root(registry, state_dir)).list(name)
    if as_json:
        typer.echo(json.dumps([{"name": e.name, "version": e.version, "precision": e.precision,
                                "deployable": e.deployable, "path": str(e.path), "sha256": e.sha256,
                                "size": e.size, "created_at": e.created_at.isoformat()} for e in entries], indent=2))
        return
    table = Table(title=f"model registry {_registry_root(registry, state_dir)}", title_justify="left")
    for column in ("name", "version", "precision", "deployable", "size", "created", "sha256"):
        table.add_column(column)
    for e in entries:
        table.add_row(escape(e.name), escape(e.version), e.precision, "yes" if e.deployable else "[red]no[/]",
                      f"{e.size / 1e6:.2f} MB", e.created_at.strftime("%Y-%m-%d %H:%M"), e.sha256[:12])
    _out().print(table)


@model_app.command("add")
def add_command(
    pkg: Annotated[Path, typer.Argument(help="the .efpkg file")],
    registry: RegistryOpt = None,
    key: Annotated[Optional[Path], typer.Option("--key", help="trusted public key PEM (default: the fleet's)")] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="store without checking the signature")] = False,
    state_dir: StateDirOpt = None,
) -> None:
    """Verify a package and copy it into the local registry."""
    from models.registry import LocalRegistry

    key_path = None if no_verify else _public_key_path(key, state_dir)
    try:
        entry = LocalRegistry(_registry_root(registry, state_dir)).add(pkg, key_path)
    except PackageError as exc:
        raise _fail(str(exc)) from None
    checked = "unverified" if key_path is None else "verified"
    _out().print(f"[green]added[/] {escape(entry.name)} {escape(entry.version)} ({entry.precision}, {checked}) "
                 f"-> {escape(str(entry.path))}")
