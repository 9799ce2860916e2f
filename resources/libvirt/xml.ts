/**
 * A small XML builder and parser, enough for libvirt's domain documents: elements, attributes,
 * text, comments, CDATA and processing instructions. No dependency: libvirt's XML is plain and
 * `virsh dumpxml` prints it the same way every time.
 *
 * The builder escapes every attribute and text value, so a value that passed the schema can never
 * open an element or end an attribute. The parser keeps namespace prefixes as written and resolves
 * `xmlns` declarations on demand (`namespaceOf`), which is all the `<metadata>` ownership mark needs.
 */

export interface XmlElement {
    name: string;
    attrs: Record<string, string>;
    children: XmlNode[];
}

export type XmlNode = XmlElement | string;

/** Attribute values: undefined and null leave the attribute out; numbers and booleans print as text. */
export type AttrValue = string | number | boolean | undefined | null;

/** An element; children that are undefined, null or false are left out (for optional parts). */
export function el(
    name: string,
    attrs: Record<string, AttrValue> = {},
    ...children: Array<XmlNode | XmlNode[] | undefined | null | false>
): XmlElement {
    if (!/^[A-Za-z_][A-Za-z0-9_.:-]*$/.test(name)) throw new Error(`not an XML element name: ${JSON.stringify(name)}`);
    const kept: Record<string, string> = {};
    for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null) continue;
        if (!/^[A-Za-z_][A-Za-z0-9_.:-]*$/.test(k)) throw new Error(`not an XML attribute name: ${JSON.stringify(k)}`);
        kept[k] = String(v);
    }
    const flat: XmlNode[] = [];
    for (const c of children) {
        if (c === undefined || c === null || c === false) continue;
        if (Array.isArray(c)) flat.push(...c);
        else flat.push(c);
    }
    return { name, attrs: kept, children: flat };
}

/** Characters XML 1.0 cannot carry at all, even escaped. */
const FORBIDDEN = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/;

function checkChars(s: string): string {
    if (FORBIDDEN.test(s)) throw new Error(`XML cannot carry control characters: ${JSON.stringify(s)}`);
    return s;
}

export function escapeText(s: string): string {
    return checkChars(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function escapeAttr(s: string): string {
    // Both quote kinds, and white space other than a plain space, which a parser would normalize.
    return escapeText(s).replace(/"/g, "&quot;").replace(/'/g, "&apos;").replace(/\t/g, "&#9;").replace(/\n/g, "&#10;").replace(/\r/g, "&#13;");
}

/** Serializes with two-space indentation; an element holding only text stays on one line. */
export function serialize(node: XmlElement, indent = ""): string {
    const attrs = Object.entries(node.attrs)
        .map(([k, v]) => ` ${k}='${escapeAttr(v)}'`)
        .join("");
    if (node.children.length === 0) return `${indent}<${node.name}${attrs}/>`;
    if (node.children.every((c) => typeof c === "string")) {
        return `${indent}<${node.name}${attrs}>${escapeText((node.children as string[]).join(""))}</${node.name}>`;
    }
    const inner = node.children
        .map((c) => (typeof c === "string" ? indent + "  " + escapeText(c) : serialize(c, indent + "  ")))
        .join("\n");
    return `${indent}<${node.name}${attrs}>\n${inner}\n${indent}</${node.name}>`;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

export function unescape(s: string): string {
    return s.replace(/&(#x[0-9A-Fa-f]+|#[0-9]+|[A-Za-z]+);/g, (whole, ref: string) => {
        if (ref[0] === "#") {
            const code = ref[1] === "x" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
            return String.fromCodePoint(code);
        }
        if (!(ref in ENTITIES)) throw new Error(`unknown XML entity ${whole}`);
        return ENTITIES[ref];
    });
}

/** Parses one XML document into its root element. Throws with the offset on malformed input. */
export function parse(text: string): XmlElement {
    let pos = 0;
    const fail = (why: string): never => {
        throw new Error(`malformed XML at offset ${pos}: ${why} (near ${JSON.stringify(text.slice(pos, pos + 40))})`);
    };
    const skipMisc = () => {
        for (;;) {
            while (pos < text.length && /\s/.test(text[pos])) pos++;
            if (text.startsWith("<?", pos)) {
                const end = text.indexOf("?>", pos);
                if (end < 0) fail("unterminated processing instruction");
                pos = end + 2;
            } else if (text.startsWith("<!--", pos)) {
                const end = text.indexOf("-->", pos);
                if (end < 0) fail("unterminated comment");
                pos = end + 3;
            } else if (text.startsWith("<!DOCTYPE", pos)) {
                fail("DOCTYPE is not supported");
            } else return;
        }
    };
    const NAME = /[A-Za-z_][A-Za-z0-9_.:-]*/y;
    const readName = (): string => {
        NAME.lastIndex = pos;
        const m = NAME.exec(text);
        if (!m) fail("expected a name");
        pos += m![0].length;
        return m![0];
    };
    const element = (): XmlElement => {
        if (text[pos] !== "<") fail("expected <");
        pos++;
        const name = readName();
        const attrs: Record<string, string> = {};
        for (;;) {
            while (/\s/.test(text[pos] ?? "")) pos++;
            if (text.startsWith("/>", pos)) {
                pos += 2;
                return { name, attrs, children: [] };
            }
            if (text[pos] === ">") {
                pos++;
                break;
            }
            const key = readName();
            while (/\s/.test(text[pos] ?? "")) pos++;
            if (text[pos] !== "=") fail(`expected = after attribute ${key}`);
            pos++;
            while (/\s/.test(text[pos] ?? "")) pos++;
            const q = text[pos];
            if (q !== '"' && q !== "'") fail("expected a quoted attribute value");
            const end = text.indexOf(q, pos + 1);
            if (end < 0) fail("unterminated attribute value");
            if (key in attrs) fail(`attribute ${key} given twice`);
            attrs[key] = unescape(text.slice(pos + 1, end).replace(/[\t\n\r]/g, " "));
            pos = end + 1;
        }
        const children: XmlNode[] = [];
        let textRun = "";
        const flush = () => {
            if (textRun.trim() !== "") children.push(textRun);
            textRun = "";
        };
        for (;;) {
            if (pos >= text.length) fail(`unterminated element <${name}>`);
            if (text.startsWith("</", pos)) {
                pos += 2;
                const closing = readName();
                if (closing !== name) fail(`</${closing}> closes <${name}>`);
                while (/\s/.test(text[pos] ?? "")) pos++;
                if (text[pos] !== ">") fail("expected >");
                pos++;
                flush();
                return { name, attrs, children };
            }
            if (text.startsWith("<!--", pos)) {
                const end = text.indexOf("-->", pos);
                if (end < 0) fail("unterminated comment");
                pos = end + 3;
            } else if (text.startsWith("<![CDATA[", pos)) {
                const end = text.indexOf("]]>", pos);
                if (end < 0) fail("unterminated CDATA");
                textRun += text.slice(pos + 9, end);
                pos = end + 3;
            } else if (text.startsWith("<?", pos)) {
                const end = text.indexOf("?>", pos);
                if (end < 0) fail("unterminated processing instruction");
                pos = end + 2;
            } else if (text[pos] === "<") {
                flush();
                children.push(element());
            } else {
                const next = text.indexOf("<", pos);
                const end = next < 0 ? text.length : next;
                textRun += unescape(text.slice(pos, end));
                pos = end;
            }
        }
    };
    skipMisc();
    const root = element();
    skipMisc();
    if (pos < text.length) fail("content after the root element");
    return root;
}

/** Child elements, optionally of one name. */
export function childElements(e: XmlElement | undefined, name?: string): XmlElement[] {
    if (!e) return [];
    return e.children.filter((c): c is XmlElement => typeof c !== "string" && (name === undefined || c.name === name));
}

/** The first child element with that name. */
export function child(e: XmlElement | undefined, name: string): XmlElement | undefined {
    return childElements(e, name)[0];
}

/** The first element down a path of names: `find(domain, "cputune", "emulatorpin")`. */
export function find(e: XmlElement | undefined, ...path: string[]): XmlElement | undefined {
    let cur = e;
    for (const p of path) cur = child(cur, p);
    return cur;
}

/** An element's text content (its own text children, trimmed). */
export function textOf(e: XmlElement | undefined): string | undefined {
    if (!e) return undefined;
    return e.children.filter((c): c is string => typeof c === "string").join("").trim();
}

/** The local part of a prefixed name: `kvmtune:owner` -> `owner`. */
export function localName(name: string): string {
    return name.includes(":") ? name.slice(name.indexOf(":") + 1) : name;
}

/** The namespace URI of an element, from the declarations on it and its ancestors (given outermost first). */
export function namespaceOf(e: XmlElement, ancestors: XmlElement[] = []): string | undefined {
    const prefix = e.name.includes(":") ? e.name.slice(0, e.name.indexOf(":")) : "";
    const attr = prefix ? `xmlns:${prefix}` : "xmlns";
    for (const scope of [e, ...[...ancestors].reverse()]) {
        if (attr in scope.attrs) return scope.attrs[attr];
    }
    return undefined;
}
