#!/usr/bin/env python3
"""Regenerates the XML golden files and expat's name tables.

Each case NAME becomes NAME.xml (the body sent), NAME.json (what
`xmltodict.parse` returns, for people to read) and NAME.cbor (that value as
`cbor2.dumps` encodes it, which src/convert/xml.rs must reproduce byte for
byte). Needs `pip install xmltodict cbor2`.

    python3 tests/golden/xml/generate.py               # golden files
    python3 tests/golden/xml/generate.py --name-tables # Rust tables on stdout
"""
import json
import os
import sys

CASES = {
    "seed_records": b"<records>\n<record>\n<field1>value1</field1>\n</record>\n<record>\n<field1>value2</field1>\n</record>\n</records>\n",
    "declaration_and_bom": b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\n<a>hello</a>\n',
    "empty_root": b"<a/>",
    "empty_root_open_close": b"<a>  \n\t </a>",
    "attributes_only": b'<a x="1" y=\'two\'/>',
    "attributes_and_text": b'<a x="1">  text  </a>',
    "attributes_children_text": b'<a x="1"><b/>t</a>',
    "repeated_children": b"<a><b>1</b><c/><b>2</b><b/></a>",
    "nested_repeats": b"<r><g><i>1</i><i>2</i></g><g><i>3</i></g><g/></r>",
    "mixed_text": b"<a>x<b/>y</a>",
    "mixed_text_spaces": b"<a> x <b>in</b> y </a>",
    "cdata": b"<a><![CDATA[ <not> &a tag; ]]> tail</a>",
    "cdata_and_text": b"<a>pre<![CDATA[mid]]>post<b/></a>",
    "entities": b'<a t="&lt;&gt;&amp;&apos;&quot;&#65;&#x42;">&lt;&gt;&amp;&apos;&quot;&#67;&#x1F600;</a>',
    "namespaces": b'<ns:root xmlns:ns="urn:x" xmlns="urn:default"><ns:item ns:id="7">v</ns:item><item/></ns:root>',
    "comments_and_pis": b'<?xml version="1.0"?><!-- c --><?pi data?><a><!-- inner --><?p?>t<b/></a><!-- after -->\n',
    "numbers_stay_text": b"<n><i>5</i><f>1.50</f><b>true</b></n>",
    "line_endings": b'<a x="1\r\n2\t3&#10;4">l1\r\nl2\rl3&#13;</a>',
    "unicode": "<données clé=\"été\"><名前>山田</名前><x>\u00a0nbsp\u00a0</x></données>".encode(),
    "long_text": b"<a>" + b"x" * 300 + b"</a>",
    "many_children": b"<a>" + b"".join(b"<c%d>%d</c%d>" % (i, i, i) for i in range(30)) + b"</a>",
    "deep_64": b"<d>" * 64 + b"x" + b"</d>" * 64,
    "attribute_and_child_order": b'<a z="1"><y/><x/><y/>t<w a="b"/></a>',
    "child_named_like_text": b"<a><text>t</text>u</a>",
}


def name_tables():
    import xml.parsers.expat as expat

    def accepts(doc):
        parser = expat.ParserCreate(None, None)
        try:
            parser.Parse(doc.encode("utf-8"), True)
            return True
        except expat.ExpatError:
            return False

    def ranges(pred):
        out, start = [], None
        for cp in range(0x110000):
            ok = not (0xD800 <= cp <= 0xDFFF) and pred(cp)
            if ok and start is None:
                start = cp
            if not ok and start is not None:
                out.append((start, cp - 1))
                start = None
        if start is not None:
            out.append((start, 0x10FFFF))
        return out

    def emit(name, rs):
        lines, line = [], "   "
        for a, b in rs:
            item = " (0x%X, 0x%X)," % (a, b)
            if len(line) + len(item) > 100:
                lines.append(line)
                line = "   "
            line += item
        lines.append(line)
        return "#[rustfmt::skip]\nconst %s: &[(u32, u32)] = &[\n%s\n];\n" % (name, "\n".join(lines))

    start = ranges(lambda cp: accepts("<" + chr(cp) + "/>"))
    # "<a" + c + "b/>": a space would make "b" an attribute without a value,
    # which expat refuses, so only name characters pass.
    name = ranges(lambda cp: accepts("<a" + chr(cp) + "b/>"))
    print(emit("NAME_START_RANGES", start) + emit("NAME_CHAR_RANGES", name), end="")


def golden():
    import cbor2
    import xmltodict

    here = os.path.dirname(os.path.abspath(__file__))
    for name, body in CASES.items():
        value = xmltodict.parse(body)
        with open(os.path.join(here, name + ".xml"), "wb") as f:
            f.write(body)
        with open(os.path.join(here, name + ".json"), "w") as f:
            json.dump(value, f, ensure_ascii=False, indent=1)
            f.write("\n")
        with open(os.path.join(here, name + ".cbor"), "wb") as f:
            f.write(cbor2.dumps(value))
    print("\n".join(CASES))


if __name__ == "__main__":
    name_tables() if "--name-tables" in sys.argv else golden()
