#!/usr/bin/env python3
"""Lists the public API of a crate of the workspace, one item per line, sorted, so that a change to
it shows in review (`git diff`) and in CI (`.ci/run` compares it with the committed list).

    python3 scripts/public-api.py ringlog-db > engine/public-api.txt      # regenerate
    python3 scripts/public-api.py ringlog-db --check engine/public-api.txt

It reads rustdoc's JSON output, which stable rustdoc writes with RUSTC_BOOTSTRAP=1 (the output
format is unstable: the script needs only its basic shape). Until a version is tagged and
`cargo semver-checks` can compare against it, this list is the project's semver review aid.
"""
import json
import os
import subprocess
import sys


def run_rustdoc(package):
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    subprocess.run(
        ["cargo", "rustdoc", "-q", "-p", package, "--lib", "--",
         "-Z", "unstable-options", "--output-format", "json"],
        check=True, env=env)
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    with open(os.path.join(target, "doc", package.replace("-", "_") + ".json")) as f:
        return json.load(f)


class Api:
    def __init__(self, doc):
        self.doc = doc
        self.index = doc["index"]
        self.lines = set()

    def item(self, id_):
        return self.index.get(str(id_))

    def ty(self, t):
        if t is None:
            return "()"
        if not isinstance(t, dict):
            return str(t)
        (k, v), = t.items()
        if k == "primitive":
            return v
        if k == "generic":
            return v
        if k == "tuple":
            return "(" + ", ".join(self.ty(x) for x in v) + ")"
        if k == "slice":
            return "[" + self.ty(v) + "]"
        if k == "array":
            return "[" + self.ty(v["type"]) + "; " + str(v["len"]) + "]"
        if k == "borrowed_ref":
            lt = (v.get("lifetime") or "") + " " if v.get("lifetime") else ""
            return "&" + lt + ("mut " if v.get("is_mutable") else "") + self.ty(v["type"])
        if k == "raw_pointer":
            return ("*mut " if v.get("is_mutable") else "*const ") + self.ty(v["type"])
        if k == "resolved_path":
            return v["path"] + self.args(v.get("args"))
        if k == "dyn_trait":
            return "dyn " + " + ".join(b["trait"]["path"] + self.args(b["trait"].get("args"))
                                       for b in v["traits"])
        if k == "impl_trait":
            return "impl " + " + ".join(self.bound(b) for b in v)
        if k == "qualified_path":
            return "<" + self.ty(v["self_type"]) + ">::" + v["name"]
        if k == "function_pointer":
            return "fn(" + ", ".join(self.ty(x[1]) for x in v["sig"]["inputs"]) + ")"
        return k

    def bound(self, b):
        if "trait_bound" in b:
            tr = b["trait_bound"]["trait"]
            return tr["path"] + self.args(tr.get("args"))
        if "outlives" in b:
            return b["outlives"]
        return "?"

    def args(self, a):
        if not a or "angle_bracketed" not in a:
            if a and "parenthesized" in a:
                p = a["parenthesized"]
                return "(" + ", ".join(self.ty(x) for x in p["inputs"]) + ")" + (
                    " -> " + self.ty(p["output"]) if p.get("output") else "")
            return ""
        parts = []
        for x in a["angle_bracketed"]["args"]:
            if "type" in x:
                parts.append(self.ty(x["type"]))
            elif "lifetime" in x:
                parts.append(x["lifetime"])
            elif "const" in x:
                parts.append(str(x["const"].get("expr", "_")))
        for c in a["angle_bracketed"].get("constraints", []):
            parts.append(c["name"] + "=" + (self.ty(c["binding"]["equality"]["type"])
                                            if "equality" in c["binding"] and "type" in c["binding"]["equality"] else "..."))
        return "<" + ", ".join(parts) + ">" if parts else ""

    def sig(self, name, f):
        s = f["sig"]
        gens = [g["name"] for g in f.get("generics", {}).get("params", [])
                if "lifetime" not in g["kind"]]
        ins = ", ".join(n if n == "self" else n + ": " + self.ty(t) for n, t in s["inputs"])
        out = s.get("output")
        return "fn " + name + ("<" + ", ".join(gens) + ">" if gens else "") + "(" + ins + ")" + (
            " -> " + self.ty(out) if out else "")

    def attrs(self, it):
        out = []
        for a in it.get("attrs", []):
            text = a if isinstance(a, str) else json.dumps(a)
            if "non_exhaustive" in text:
                out.append("#[non_exhaustive] ")
            if "must_use" in text:
                out.append("#[must_use] ")
        return "".join(out)

    def add(self, line):
        self.lines.add(line)

    def walk_module(self, id_, prefix):
        m = self.item(id_)
        for child in m["inner"]["module"]["items"]:
            self.walk(child, prefix)

    def walk(self, id_, prefix, name=None):
        it = self.item(id_)
        if it is None or it.get("visibility") != "public":
            return
        (kind, inner), = it["inner"].items()
        name = name or it.get("name")
        path = prefix + "::" + name if name else prefix
        if kind == "use":
            target = inner.get("id")
            if target is not None and self.item(target) is not None:
                if inner.get("is_glob"):
                    tgt = self.item(target)
                    if "module" in tgt["inner"]:
                        self.walk_module(target, prefix)
                    return
                self.walk(target, prefix, inner["name"])
            else:
                self.add("pub use " + inner["source"] + " as " + prefix + "::" + inner["name"])
            return
        if kind == "module":
            self.add("pub mod " + path)
            self.walk_module(id_, path)
        elif kind == "function":
            self.add("pub " + self.sig(path, inner))
        elif kind == "constant":
            self.add("pub const " + path + ": " + self.ty(inner["type"]))
        elif kind == "static":
            self.add("pub static " + path + ": " + self.ty(inner["type"]))
        elif kind == "type_alias":
            self.add("pub type " + path + " = " + self.ty(inner["type"]))
        elif kind == "macro":
            self.add("macro " + path + "!")
        elif kind == "trait":
            self.add("pub trait " + path)
            for m in inner["items"]:
                mi = self.item(m)
                if mi and "function" in mi["inner"]:
                    self.add("pub trait " + path + " :: " + self.sig(mi["name"], mi["inner"]["function"]))
        elif kind in ("struct", "enum", "union"):
            self.add(self.attrs(it) + "pub " + kind + " " + path)
            if kind == "struct":
                sk = inner["kind"]
                fields = sk.get("plain", {}).get("fields", []) if isinstance(sk, dict) else []
                if isinstance(sk, dict) and "tuple" in sk:
                    fields = [f for f in sk["tuple"] if f is not None]
                for f in fields:
                    fi = self.item(f)
                    if fi and fi.get("visibility") == "public":
                        self.add("pub struct " + path + " field " + (fi["name"] or "") + ": " +
                                 self.ty(fi["inner"]["struct_field"]))
            if kind == "enum":
                for v in inner["variants"]:
                    vi = self.item(v)
                    self.add(self.attrs(vi) + "pub enum " + path + " variant " + vi["name"])
            for impl_id in inner.get("impls", []):
                im = self.item(impl_id)
                if im is None:
                    continue
                imp = im["inner"]["impl"]
                if imp.get("is_synthetic") or imp.get("blanket_impl") is not None:
                    continue
                if imp.get("trait") is not None:
                    self.add("impl " + imp["trait"]["path"] + self.args(imp["trait"].get("args")) +
                             " for " + path)
                    continue
                for m in imp["items"]:
                    mi = self.item(m)
                    if mi and mi.get("visibility") == "public" and "function" in mi["inner"]:
                        self.add("pub " + path + " :: " + self.attrs(mi) +
                                 self.sig(mi["name"], mi["inner"]["function"]))
                    elif mi and mi.get("visibility") == "public" and "constant" in mi["inner"]:
                        self.add("pub const " + path + "::" + mi["name"])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    package = sys.argv[1]
    doc = run_rustdoc(package)
    api = Api(doc)
    crate = package.replace("-", "_")
    api.walk_module(doc["root"], crate)
    text = "\n".join(sorted(api.lines)) + "\n"
    if len(sys.argv) >= 4 and sys.argv[2] == "--check":
        with open(sys.argv[3]) as f:
            want = f.read()
        if want != text:
            import difflib
            sys.stdout.writelines(difflib.unified_diff(
                want.splitlines(True), text.splitlines(True), sys.argv[3], "now"))
            sys.exit(f"the public API of {package} changed: review the diff above, then "
                     f"regenerate {sys.argv[3]} with scripts/public-api.py {package}")
        print(f"public API of {package} unchanged ({len(api.lines)} items)")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
