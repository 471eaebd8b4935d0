"""``childsafe keys``: the installation's CURVE keys (``console.keys``).

``init`` makes what is missing (the demo and ``serve`` do it on their first
run); ``add console-<name>`` makes a pair for another workstation, admitted
by the running bus and engine within a second; ``list`` shows every key,
its role, and any secret file others could read.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from console import keys
from console.config import Config


def _config(args: argparse.Namespace) -> Config:
    return Config.load(args.config, data_dir=args.data_dir)


def cmd_keys_init(args: argparse.Namespace) -> int:
    cfg = _config(args)
    made = keys.init(cfg.data_dir)
    where = keys.keys_dir(cfg.data_dir)
    print(f"made {', '.join(made)} under {where}" if made else f"all keys exist under {where}")
    return 0


def cmd_keys_add(args: argparse.Namespace) -> int:
    cfg = _config(args)
    try:
        made = keys.create(cfg.data_dir, args.name)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    folder = keys.keys_dir(cfg.data_dir)
    if not made:
        print(f"{args.name} exists; keys are never replaced (remove {folder}/{args.name}.key* "
              "to revoke it)")
        return 1
    print(f"made {args.name}: copy {folder}/{args.name}.key_secret, bus.key and engine.key "
          f"to the workstation's keys folder and set console_key = \"{args.name}\" there")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from models.bus_rights import role_of_key

    cfg = _config(args)
    folder = keys.keys_dir(cfg.data_dir)
    for public, name in sorted(keys.known(cfg.data_dir).items(), key=lambda kv: kv[1]):
        secret = "secret here" if (folder / f"{name}.key_secret").exists() else "public only"
        print(f"{name}\t{role_of_key(name)}\t{public.decode()}\t{secret}")
    problems = keys.check_private(cfg.data_dir)
    for line in problems:
        print(f"warning: {line}")
    return 1 if problems else 0


SubParsers = argparse._SubParsersAction  # type: ignore[type-arg]


def add_keys(sub: SubParsers, add: Callable[..., argparse.ArgumentParser]) -> None:
    k = sub.add_parser("keys", help="CURVE keys of the bus, the processes and the consoles")
    k_sub = k.add_subparsers(dest="keys_command", required=True)
    add("init", cmd_keys_init, "make the keys that are missing (never replaces one)", k_sub)
    ka = add("add", cmd_keys_add, "make a key pair for another console workstation", k_sub)
    ka.add_argument("name", help="console-<workstation>, e.g. console-ws2")
    add("list", cmd_keys_list, "known keys: name, role, public key; unsafe secret files",
        k_sub)
