#!/usr/bin/env python3
"""Run the fenced code blocks of one language from a Markdown file as a Jupyter notebook.

    python scripts/doc_notebook.py docs/python.md python DIR

Each block becomes a code cell of a fresh notebook, executed in order by a real IPython kernel
(nbclient + ipykernel, the kernel of this interpreter) with DIR as its working directory, as a
user would run the example from Jupyter. The executed notebook is written to
DIR/example.ipynb; a cell that raises fails the run (exit 1) with the cell's traceback.
CI runs docs/python.md's example this way (.ci/run); it needs `pip install nbclient nbformat
ipykernel`.
"""

import os
import sys


def cells(text, lang):
    out, cur, inside = [], [], False
    for line in text.splitlines():
        stripped = line.strip()
        if not inside and stripped == "```" + lang:
            inside, cur = True, []
        elif inside and stripped == "```":
            inside = False
            out.append("\n".join(cur))
        elif inside:
            cur.append(line)
    return out


def main():
    path, lang, cwd = sys.argv[1], sys.argv[2], sys.argv[3]
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    with open(path, encoding="utf-8") as f:
        sources = cells(f.read(), lang)
    if not sources:
        sys.exit(f"{path}: no ```{lang} blocks")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    client = NotebookClient(nb, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": os.path.abspath(cwd)}})
    try:
        client.execute()
    except CellExecutionError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    finally:
        nbformat.write(nb, os.path.join(cwd, "example.ipynb"))
    outputs = sum(len(c.get("outputs", [])) for c in nb.cells)
    print(f"{path}: {len(nb.cells)} cell(s) ran in a {client.kernel_name} kernel, {outputs} output(s)")


if __name__ == "__main__":
    main()
