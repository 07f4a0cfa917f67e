"""Print the module map of the vta package as a Markdown table: lines and the vta
modules each one imports (at module top; in brackets: inside functions).

    python scripts/module_map.py > map.md
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vta"


def imports(path: Path) -> tuple[set[str], set[str]]:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top_ids = {id(n) for n in tree.body}
    top, lazy = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                name = candidate if (ROOT / candidate.replace(".", "/")).with_suffix(".py").exists() else target
                (top if id(node) in top_ids else lazy).add(name.removeprefix("vta."))
    return top, lazy - top


def main() -> None:
    print("| module | lines | imports (module top) | imported lazily |")
    print("|---|---:|---|---|")
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        top, lazy = imports(path)
        print(f"| `{rel}` | {len(path.read_text().splitlines())} | {', '.join(sorted(top))} | {', '.join(sorted(lazy))} |")


if __name__ == "__main__":
    main()
