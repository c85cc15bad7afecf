"""kairanctl backup keygen|create|list|verify|restore: sealed backups of the store (S9)."""

from __future__ import annotations

from pathlib import Path

from kairand.backup import service
from kairand.backup.agefmt import generate_recovery_key
from kairand.ctl.context import Context, Subparsers
from kairand.errors import ExitCode


def _keygen(ctx: Context) -> int:
    args = ctx.args
    recipient = generate_recovery_key(args.private, args.public)
    print(f"復旧用の鍵ペアを作成しました / recovery key pair created (age recipient {recipient})")
    print(f"  private (keep OFFLINE, e.g. in the safe; never on the appliance): {args.private}")
    print(f"  public  (copy to the appliance as /etc/kairan/recovery.pub):    {args.public}")
    return ExitCode.OK


def _create(ctx: Context) -> int:
    args = ctx.args
    config = ctx.keyring()
    info = service.create_backup(
        config,
        args.recipient,
        args.directory or config.backup.directory,
        keep=config.backup.keep if args.keep is None else args.keep,
        lifetime_days=config.backup.lifetime_days,
        mirror=config.backup.mirror,
        actor=ctx.actor,
    )
    print(f"バックアップを作成しました / backup created: {info.path} ({info.size} bytes)")
    return ExitCode.OK


def _list(ctx: Context) -> int:
    args = ctx.args
    directory = args.directory or ctx.config.backup.directory
    backups = service.list_backups(directory)
    if not backups:
        print(f"バックアップはありません / no backups in {directory}")
        return ExitCode.OK
    for info in backups:
        m = info.manifest
        if "error" in m:
            print(f"{info.path.name}  DAMAGED: {m['error']}")
            continue
        print(
            f"{info.path.name}  {m.get('created_at')}  schema {m.get('schema_version')}  "
            f"{info.size} bytes  format {m.get('format', 'kbak/v1')}"
        )
    return ExitCode.OK


def _verify(ctx: Context) -> int:
    args = ctx.args
    manifest = service.verify_backup(args.file, args.recovery_key)
    print(
        "バックアップは完全です / backup is intact: "
        f"created {manifest.get('created_at')}, schema {manifest.get('schema_version')}"
    )
    return ExitCode.OK


def _restore(ctx: Context) -> int:
    args = ctx.args
    config = ctx.config
    if args.credstore is not None:
        sink = service.credstore_sink(args.credstore)
    elif config.keyring.backend:
        # Development / training setups name a writable keyring backend in their config.
        ctx.keyring()
        sink = service.keyring_sink
    else:
        sink = service.credstore_sink(service.DEFAULT_CREDSTORE)
    manifest = service.restore_backup(
        config,
        args.file,
        args.recovery_key,
        sink,
        force=args.force,
        journals=args.journal or None,
        actor=ctx.actor,
    )
    print(
        f"復元しました / restored: backup of {manifest.get('created_at')} -> {config.database_path}"
    )
    again = manifest.get("reapplied", {})
    print(
        "削除記録を再適用しました / deletion journal re-applied: "
        f"{again.get('residents', 0)} residents, {again.get('answers', 0)} answers"
    )
    print("kairand を起動してください / now start kairand (systemctl start kairand)")
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    backup = subparsers.add_parser("backup", help="sealed backups of the store (S9)")
    sub = backup.add_subparsers(dest="backup_command", required=True)

    keygen = sub.add_parser("keygen", help="create the offline recovery key pair")
    keygen.add_argument("--private", type=Path, required=True, help="private key file (offline)")
    keygen.add_argument("--public", type=Path, required=True, help="public key file")
    keygen.set_defaults(func=_keygen)

    create = sub.add_parser("create", help="back up the store now (sealed to the recovery key)")
    create.add_argument(
        "--directory", type=Path, default=None, help="default: [backup] directory in the config"
    )
    create.add_argument(
        "--recipient",
        type=Path,
        default=service.DEFAULT_RECIPIENT,
        help="recovery PUBLIC key (age1… or a PEM from earlier releases)",
    )
    create.add_argument(
        "--keep",
        type=int,
        default=None,
        help="generations to keep (0: no count limit; default: [backup] keep)",
    )
    create.set_defaults(func=_create)

    lister = sub.add_parser("list", help="list backups and their manifests (no key needed)")
    lister.add_argument(
        "--directory", type=Path, default=None, help="default: [backup] directory in the config"
    )
    lister.set_defaults(func=_list)

    verify = sub.add_parser("verify", help="check a backup opens completely with the key")
    verify.add_argument("file", type=Path)
    verify.add_argument("--recovery-key", type=Path, required=True)
    verify.set_defaults(func=_verify)

    restore = sub.add_parser("restore", help="restore a backup onto this (fresh) appliance")
    restore.add_argument("file", type=Path)
    restore.add_argument(
        "--recovery-key", type=Path, required=True, help="the offline recovery PRIVATE key"
    )
    restore.add_argument(
        "--force", action="store_true", help="replace an existing store (stop kairand first)"
    )
    restore.add_argument(
        "--credstore",
        type=Path,
        default=None,
        help=f"seal restored secrets here (default {service.DEFAULT_CREDSTORE})",
    )
    restore.add_argument(
        "--journal",
        type=Path,
        action="append",
        help="deletion journal to re-apply (repeatable; default: the appliance's and the copy "
        "beside the backup)",
    )
    restore.set_defaults(func=_restore)
