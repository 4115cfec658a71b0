#!/usr/bin/env python3
"""Fails when the build found a file whose Debian package scripts/dev.sh would not install.

A fresh Debian 12 machine gets exactly the packages of dev.sh's PACKAGES=( ... ) list and
what they depend on. A machine that happens to have more (a developer's, CI's) builds fine
and hides the missing install step; this check does not, because it asks dpkg which package
owns each file the build actually used:

  * CMakeCache.txt's *_DIR (a CMake package folder: its *Config.cmake file is checked),
    *_LIBRARY and *_INCLUDE_DIR entries under /usr;
  * <build>/found-dependencies.txt, written at configure time by
    cmake/DependencyManifest.cmake: every library and include folder the imported targets
    of find_package() resolved to.

A file is fine if one of the packages owning it is listed in dev.sh or is in the closure of
their Depends/Pre-Depends (read from dpkg's database of installed packages, so it needs no
network and no apt lists). Otherwise it prints the file and its package and exits 1.

Usage: scripts/check_declared_deps.py BUILD_DIR [--dev-sh scripts/dev.sh]
       scripts/check_declared_deps.py BUILD_DIR --without PACKAGE
         (the same check as if PACKAGE were missing from dev.sh's list: it must fail and
          name PACKAGE if the build uses PACKAGE directly; its own test runs this)
"""

import argparse
import os
import re
import subprocess
import sys


def declared_packages(dev_sh):
    """The names inside `PACKAGES=( ... )` of dev.sh, comments dropped."""
    text = open(dev_sh, encoding="utf-8").read()
    match = re.search(r"^PACKAGES=\((.*?)^\)", text, re.S | re.M)
    if not match:
        sys.exit(f"{dev_sh}: no PACKAGES=( ... ) list found")
    names = []
    for line in match.group(1).splitlines():
        line = line.split("#", 1)[0]
        names += line.split()
    return names


def installed_database():
    """{package: [dependency alternatives]} and {virtual name: [providers]} of installed packages."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Status}\t${Depends}, ${Pre-Depends}\t${Provides}\n"],
        capture_output=True, text=True, check=True).stdout
    depends, provides = {}, {}
    for line in out.splitlines():
        package, status, deps, provided = (line.split("\t") + ["", "", ""])[:4]
        if not status.endswith("installed") or "not-installed" in status:
            continue
        groups = []
        for group in deps.split(","):
            alternatives = [re.sub(r"[\s(].*|:any$|:.*$", "", a.strip()) for a in group.split("|")]
            alternatives = [a for a in alternatives if a]
            if alternatives:
                groups.append(alternatives)
        depends[package] = groups
        for virtual in provided.split(","):
            name = re.sub(r"[\s(].*", "", virtual.strip())
            if name:
                provides.setdefault(name, []).append(package)
    return depends, provides


def closure(roots, depends, provides):
    """Every installed package reachable from `roots` through Depends and Pre-Depends."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        candidates = [name] if name in depends else provides.get(name, [])
        for package in candidates:
            if package in seen:
                continue
            seen.add(package)
            for alternatives in depends[package]:
                todo.extend(a for a in alternatives if a in depends or a in provides)
    return seen


def found_paths(build_dir):
    """The paths the build found: CMake cache entries and the configure-time manifest."""
    paths = []
    cache = os.path.join(build_dir, "CMakeCache.txt")
    if not os.path.isfile(cache):
        sys.exit(f"{cache}: not found (configure the build first)")
    entry = re.compile(r"^([A-Za-z0-9_]+_(DIR|LIBRARY|LIBRARY_RELEASE|INCLUDE_DIR|INCLUDE_DIRS)):[A-Z]+=(.*)$")
    for line in open(cache, encoding="utf-8", errors="replace"):
        match = entry.match(line.strip())
        if match:
            paths += [(p, f"CMakeCache.txt {match.group(1)}") for p in match.group(3).split(";")]
    manifest = os.path.join(build_dir, "found-dependencies.txt")
    if not os.path.isfile(manifest):
        sys.exit(f"{manifest}: not found (written at configure time by cmake/DependencyManifest.cmake)")
    for line in open(manifest, encoding="utf-8"):
        if line.strip():
            paths.append((line.strip(), "an imported target"))
    return paths


def owners(path):
    """Debian packages owning `path`, trying the forms dpkg may have recorded (merged /usr)."""
    forms = [path, os.path.realpath(path)]
    forms += [f[4:] for f in list(forms) if f.startswith("/usr/")]
    for form in forms:
        result = subprocess.run(["dpkg-query", "-S", form], capture_output=True, text=True)
        for line in result.stdout.splitlines():
            listed, _, owned = line.rpartition(": ")
            if owned == form and listed:
                return [p.strip().split(":")[0] for p in listed.split(",")]
    return []


def checked_file(path):
    """A CMake package folder is judged by its config file; any other path as it is."""
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.endswith(("Config.cmake", "-config.cmake")):
                return os.path.join(path, name)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("build_dir")
    parser.add_argument("--dev-sh", default=os.path.join(os.path.dirname(__file__), "dev.sh"))
    parser.add_argument("--without", help="check as if this package were not in dev.sh's list")
    args = parser.parse_args()

    declared = declared_packages(args.dev_sh)
    if args.without:
        if args.without not in declared:
            sys.exit(f"--without {args.without}: not in {args.dev_sh}'s PACKAGES list")
        declared.remove(args.without)
    depends, provides = installed_database()
    missing = [p for p in declared if p not in depends and p not in provides]
    if missing:
        sys.exit(f"{args.dev_sh} lists packages that are not installed: {' '.join(missing)} "
                 "(run scripts/dev.sh setup first)")
    installable = closure(declared, depends, provides)

    problems, checked = {}, set()
    for path, origin in found_paths(args.build_dir):
        path = checked_file(path)
        if not path.startswith("/usr/") or path.startswith("/usr/local/") or path in checked:
            continue  # only Debian's files; the build's own and hand-installed ones are not packages
        checked.add(path)
        if not os.path.exists(path):
            continue  # a NOTFOUND-style leftover the build did not use
        owning = owners(path)
        if owning and not any(p in installable for p in owning):
            problems[path] = (owning, origin)

    if problems:
        print(f"The build uses files that scripts/dev.sh would not install on a fresh machine "
              f"({len(problems)}):")
        for path, (owning, origin) in sorted(problems.items()):
            print(f"  {path} (found as {origin}) comes from Debian package {', '.join(owning)}, "
                  f"which is neither in {args.dev_sh}'s PACKAGES nor a dependency of one of them")
        print("Add the package to PACKAGES in scripts/dev.sh, or stop using it in the build.")
        return 1
    print(f"check_declared_deps: all {len(checked)} files the build found come with the "
          f"{len(declared)} packages of {args.dev_sh} or their dependencies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
