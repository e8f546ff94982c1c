"""`rig kernel build`: an L1 kernel from the user's source tree (rig.kernel.build), and the
options `rig run` and `rig matrix` share to build one before running it (--kernel-tree)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rig.commands.common import Subparsers, optional_path
from rig.core.errors import UserError
from rig.core.progress import Progress
from rig.core.spec import DEFAULT_KERNEL_CONFIG, KERNEL_CONFIGS, KernelBuildSpec, existing_dir
from rig.core.targets import PROFILES, TargetProfile, profile


def add_build_options(p: argparse.ArgumentParser, tree_option: str = "--kernel-tree",
                      jobs_option: str = "--build-jobs", required: bool = False, several: bool = False) -> None:
    """The build options of `rig kernel build`, and of `rig run`/`rig matrix` (where the tree
    and make's -j have longer names; the matrix takes several trees, an A/B)."""
    if several:
        p.add_argument(tree_option, dest="kernel_tree", metavar="DIR", action="append",
                       help="a Linux source tree: build L1's kernel from it (out of tree, reused); "
                            "twice (A and B) to run every cell with each, side by side")
    else:
        p.add_argument(tree_option, dest="kernel_tree", metavar="DIR", required=required,
                       help="a Linux source tree: build L1's kernel from it (out of tree, reused)")
    p.add_argument("--build-dir", help="kbuild's O= directory (default: .intx-rig-<arch> in the tree, or "
                                       "the cache if the tree is read-only); with several arches, a "
                                       "subdirectory per arch")
    p.add_argument("--config", default=DEFAULT_KERNEL_CONFIG,
                   help=f"{' or '.join(KERNEL_CONFIGS)} (default: the rig's minimal L1 configuration) or a "
                        ".config file; the rig's fragments go on top")
    p.add_argument(jobs_option, type=int, default=None, dest="build_jobs", metavar="N",
                   help="make -jN (default: one per core)")
    p.add_argument("--coverage", action="store_true",
                   help="build with gcov on vfio-pci's interrupt code (vfio_pci_intrs.c), in a build directory "
                        "of its own; runs report the lines of its INTx functions reached (docs/scenarios.md)")


def build_spec_of(args: argparse.Namespace) -> KernelBuildSpec | None:
    """The build the command line asks for, validated; None without --kernel-tree."""
    if not args.kernel_tree:
        config = None if args.config == DEFAULT_KERNEL_CONFIG else args.config
        given = [o for o, v in (("--build-dir", args.build_dir), ("--build-jobs", args.build_jobs),
                                ("--config", config), ("--coverage", args.coverage or None)) if v is not None]
        if given:
            raise UserError(f"{given[0]} goes with --kernel-tree")
        return None
    return KernelBuildSpec(Path(args.kernel_tree), optional_path(args.build_dir), args.config,
                           args.build_jobs, args.coverage).validate()


MAX_TREES = 4


def build_specs_of(args: argparse.Namespace) -> list[KernelBuildSpec]:
    """`rig matrix`'s trees (none, one, or an A/B), each validated; with several, each
    builds in its own tree (.intx-rig-<arch>), so --build-dir goes with one tree only."""
    trees = args.kernel_tree or []
    if len(trees) <= 1:
        one = build_spec_of(argparse.Namespace(**{**vars(args), "kernel_tree": trees[0] if trees else None}))
        return [one] if one else []
    if len(trees) > MAX_TREES:
        raise UserError(f"--kernel-tree given {len(trees)} times: at most {MAX_TREES}")
    if args.build_dir is not None:
        raise UserError(f"--build-dir {args.build_dir} with several --kernel-tree: each tree builds in its own "
                        "(.intx-rig-<arch> in it); drop --build-dir")
    specs = [KernelBuildSpec(Path(t), None, args.config, args.build_jobs, args.coverage).validate() for t in trees]
    if len({s.tree.resolve() for s in specs}) < len(specs):
        raise UserError("--kernel-tree: the same tree twice; give two different trees for an A/B")
    return specs


def build_dir_for(spec: KernelBuildSpec, prof: TargetProfile, several: bool) -> Path | None:
    """--build-dir as given for one arch; a subdirectory per arch when several are built."""
    if spec.build_dir is None:
        return None
    return spec.build_dir / prof.name if several else spec.build_dir


def add_parser(sub: Subparsers) -> None:
    ke = sub.add_parser("kernel", help="build an L1 kernel from a source tree")
    ksub = ke.add_subparsers(dest="kernel_command", required=True, parser_class=type(ke))
    bu = ksub.add_parser("build", help="configure and build L1's kernel from a source tree (out of tree, "
                                       "reused: a second build recompiles only what changed)")
    bu.add_argument("--arch", required=True, help="x86_64 or ppc64")
    add_build_options(bu, "--tree", "--jobs", required=True)
    bu.set_defaults(handler=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    if args.arch not in PROFILES:
        raise UserError(f"--arch {args.arch}: use one of {', '.join(PROFILES)}")
    prof = profile(args.arch)
    existing_dir("--tree", Path(args.kernel_tree))
    spec = build_spec_of(args)
    assert spec is not None
    from rig.core.cache import Cache
    from rig.kernel.build import build
    built = build(spec, prof, Cache(optional_path(args.cache_dir)).root, Progress(quiet=args.quiet))
    for line in built.summary():
        print(line)
    modules = f" --modules {built.modules}" if built.modules else ""
    print(f"run it   rig run --arch {prof.name} --kernel {built.kernel}{modules}   "
          f"(or: rig run --arch {prof.name} {' '.join(tree_options(spec))})")
    return 0


def tree_options(spec: KernelBuildSpec) -> list[str]:
    """The `rig run` options that build (or reuse) this same kernel: the tree, and the build
    directory and configuration when not the defaults (else a run would build another)."""
    opts = ["--kernel-tree", str(spec.tree)]
    if spec.build_dir is not None:
        opts += ["--build-dir", str(spec.build_dir)]
    if spec.config != DEFAULT_KERNEL_CONFIG:
        opts += ["--config", spec.config]
    if spec.coverage:
        opts.append("--coverage")
    return opts
