#!/usr/bin/env python3
"""check_layers.py [SOURCE_DIR]: host areas depend downward only.

The host is one library per folder of host/, in this order, lowest first. An area may
include the headers of, and link, only the areas below it; cli/ alone, at the top, knows
the commands. This list is the one place the order is written down (docs/architecture.md
shows it as a diagram).
"""
import pathlib
import re
import sys

LAYERS = ["util", "config", "plugins", "data", "eval", "report", "train", "tune", "cli"]

INCLUDE = re.compile(r'^\s*#\s*include\s*"host/([A-Za-z0-9_]+)/([^"]+)"')
LINK = re.compile(r"target_link_libraries\(\s*bachlab_host_(\w+)\b([^)]*)\)", re.S)
SOURCES = re.compile(r"target_sources\(\s*bachlab_host_(\w+)\b", re.S)
LIBRARY = re.compile(r"bachlab_host_(\w+)")


def order_text():
    return " < ".join(LAYERS)


def rank(area):
    return LAYERS.index(area) if area in LAYERS else None


def check(root):
    host = root / "host"
    problems = []
    for folder in sorted(p for p in host.iterdir() if p.is_dir()):
        if rank(folder.name) is None:
            problems.append(f"host/{folder.name}/: this folder is not in the layer order ({order_text()}); "
                            f"add it to LAYERS in scripts/check_layers.py at its place")
    for path in sorted(host.rglob("*")):
        if path.suffix not in (".h", ".cpp") or not path.is_file():
            continue
        relative = path.relative_to(root)
        area = relative.parts[1]
        if rank(area) is None:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            used = match.group(1)
            if used == area:
                continue
            if rank(used) is None or rank(used) > rank(area):
                problems.append(f"{relative}:{number}: {area} includes host/{used}/{match.group(2)}, but {used} is "
                                f"not below {area} ({order_text()}); move what both need down to a lower area, "
                                f"or the code that needs it up")
    for folder in sorted(p for p in host.iterdir() if p.is_dir() and rank(p.name) is not None):
        cmake = folder / "CMakeLists.txt"
        if any(folder.glob("*.cpp")) and (not cmake.exists() or
                                          not re.search(rf"target_sources\(\s*bachlab_host_{folder.name}\b",
                                                        cmake.read_text())):
            problems.append(f"host/{folder.name}/: its sources are not built as the library bachlab_host_"
                            f"{folder.name} (in host/{folder.name}/CMakeLists.txt); each folder is one library")
    for cmake in sorted(host.rglob("CMakeLists.txt")):
        relative = cmake.relative_to(root)
        text = re.sub(r"#[^\n]*", "", cmake.read_text())
        folder = relative.parts[1] if len(relative.parts) > 2 else None
        for match in SOURCES.finditer(text):
            if folder is not None and match.group(1) != folder:
                problems.append(f"{relative}: host/{folder}/ adds sources to bachlab_host_{match.group(1)}; each "
                                f"folder is one library, bachlab_host_{folder}")
        for match in LINK.finditer(text):
            library = match.group(1)
            for used in LIBRARY.findall(match.group(2)):
                if rank(library) is None or rank(used) is None:
                    continue
                if rank(used) >= rank(library):
                    problems.append(f"{relative}: bachlab_host_{library} links bachlab_host_{used}, but {used} is "
                                    f"not below {library} ({order_text()})")
    return problems


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    problems = check(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} dependencies against the layer order ({order_text()})")
        return 1
    print(f"host areas depend downward only: {order_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
