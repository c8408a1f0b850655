#!/usr/bin/env python3
"""Short functions, checked (issue 13 point 3; docs/architecture.md, "Function length").
  function_length.py ROOT EXCEPTIONS   exit 1 naming each function of ROOT's src/ and cuda/ longer
                                       than LIMIT lines that EXCEPTIONS does not list, or that is
                                       longer than the length EXCEPTIONS allows it
  function_length.py --list ROOT       print every function longer than LIMIT, longest first, in
                                       the exceptions file's format
A function's length is the number of lines from the line of its body's opening brace to the line
of its closing brace, both included (blank and comment lines count: what a reader scrolls through).
EXCEPTIONS has one line per allowed long function, "LENGTH FILE NAME" ('#' starts a comment);
NAME is the qualified name as written at the definition (Class::method, operator(), ~Class), and
the length applies to every overload of that name in that file. A function that got shorter is
noted, not failed: lower its entry (or remove it once at most LIMIT).

The scanner is a brace matcher, not a C++ parser. It drops comments, string and character
literals (raw strings included) and preprocessor lines, then reads the braces: at namespace or
class scope, a '{' opens a function body when the text since the previous ';', '{' or '}' has a
parameter list (a '(' after a name, with no '=' before it, so a variable's initialiser is not a
function) and is not a class, struct, union, enum or namespace head; brace-initialised members in
a constructor's initialiser list are told from its body by what precedes the brace. Everything
inside a function (lambdas, local classes) counts toward that function. Limits: a lambda
initialising a namespace-scope variable is not counted; braces that #if branches leave unbalanced,
or a macro that expands to a function head, would mislead it."""
import os
import re
import sys

LIMIT = 80
SOURCE_TOPS = ["src", "cuda"]
SUFFIXES = (".h", ".hpp", ".cpp", ".cu", ".cuh")
NOT_A_NAME = {"decltype", "alignas", "__launch_bounds__", "__attribute__", "noexcept", "sizeof",
              "requires", "if", "for", "while", "switch", "catch", "return"}


def strip(text):
    """The text with comments, literals and preprocessor lines blanked; newlines are kept."""
    out, i, n = [], 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c in " \t":
            out.append(c)
            i += 1
            continue
        if line_start and c == "#":  # a preprocessor line, with its continuations
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("\n")
                    i += 2
                    continue
                i += 1
            continue
        line_start = c == "\n"
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * text.count("\n", i, end))
            i = end
            continue
        raw = re.match(r'R"([^(\s]*)\(', text[i:i + 20]) if c == "R" else None
        if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = ")" + raw.group(1) + '"'
            end = text.find(close, i + raw.end())
            end = n if end < 0 else end + len(close)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
            continue
        if c == "'" and i > 0 and text[i - 1].isalnum() and re.search(r"\b\d[\w']*$", text[max(0, i - 40):i]):
            i += 1  # a digit separator: 100'000
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def drop_balanced(s, opener, closer, start):
    """The index after the bracket group that opens at s[start] (== opener)."""
    depth = 0
    for k in range(start, len(s)):
        if s[k] == opener:
            depth += 1
        elif s[k] == closer:
            depth -= 1
            if depth == 0:
                return k + 1
    return len(s)


def clean_head(head):
    """The head without template prefixes, attributes, access specifiers and launch bounds."""
    h = " ".join(head.split())
    changed = True
    while changed:
        changed = False
        m = re.match(r"\s*(public|private|protected)\s*:(?!:)\s*", h)
        if m:
            h, changed = h[m.end():], True
        m = re.match(r"\s*template\s*<", h)
        if m:
            h, changed = h[drop_balanced(h, "<", ">", m.end() - 1):], True
    h = re.sub(r"\[\[.*?\]\]", " ", h)
    for word in ("__launch_bounds__", "__attribute__", "alignas"):
        m = re.search(r"\b" + word + r"\s*\(", h)
        while m:
            h = h[:m.start()] + " " + h[drop_balanced(h, "(", ")", m.end() - 1):]
            m = re.search(r"\b" + word + r"\s*\(", h)
    return h.strip()


NAME = re.compile(r"((?:[A-Za-z_]\w*(?:<[^<>()]*>)?::)*(?:operator\s*(?:\(\)|[^\s(]+)|~?([A-Za-z_]\w*)(?:<[^<>()]*>)?))\s*$")


def param_list(h):
    """(name, index of the parameter list's '(') of a function head, or None."""
    for m in re.finditer(r"\(", h):
        before = h[:m.start()]
        if before.count("(") != before.count(")"):
            continue
        op = re.search(r"operator\s*(\(\)|[^\s(]+)\s*$", before)
        if op:
            return " ".join(NAME.search(before).group(1).split()), m.start()
        found = NAME.search(before)
        if not found:
            return None
        word = found.group(2)
        if word in NOT_A_NAME or word == "operator":
            continue
        return " ".join(found.group(1).split()), m.start()
    return None


def classify(head):
    """'namespace', 'class', 'other' or ('function', name, has constructor initialisers)."""
    h = clean_head(head)
    if re.search(r"\bnamespace\b", h) or re.fullmatch(r'extern\s*""', h):
        return "namespace"
    if re.match(r"(typedef\s+)?(class|struct|union|enum)\b", h):
        return "class"
    found = param_list(h)
    if found is None:
        return "other"
    name, at = found
    if "=" in re.sub(r"operator\s*\S+", "", h[:at]):
        return "other"
    tail = h[drop_balanced(h, "(", ")", at):]
    return ("function", name, re.search(r"(?<!:):(?!:)", tail) is not None)


def member_initialiser(head):
    """Whether a '{' after a constructor's head opens a member's brace-initialiser (y_{...}) rather
    than the body (which follows the initialiser list's last ')' or '}')."""
    return re.search(r"[\w>]\s*$", head) is not None


def functions(text):
    """(name, first line, length) of every function body in a source text."""
    found, stack, head, line = [], [], "", 1
    for c in strip(text):
        if c == "\n":
            line += 1
        if stack and stack[-1][0] in ("function", "block", "init"):
            if c == "{":
                stack.append(("init" if stack[-1][0] == "init" else "block", line, None))
            elif c == "}":
                kind, start, name = stack.pop()
                if kind == "function":
                    found.append((name, start, line - start + 1))
                    head = ""
                elif kind == "init" and not (stack and stack[-1][0] == "init"):
                    head += "{}"  # back at namespace or class scope: the head goes on
            continue
        if c == "{":
            # a brace inside the head's parentheses (a default argument's {}) initialises a value
            kind = classify(head) if head.count("(") <= head.count(")") else "other"
            if isinstance(kind, tuple):
                _, name, ctor = kind
                if ctor and member_initialiser(head):
                    stack.append(("init", line, None))
                    continue
                stack.append(("function", line, name))
            elif kind == "other":
                stack.append(("init", line, None))
                continue
            else:
                stack.append((kind, line, None))
            head = ""
        elif c == "}":
            if stack:
                stack.pop()
            head = ""
        elif c == ";":
            head = ""
        else:
            head += c
    return found


def all_functions(root):
    """(file, name, first line, length) of every function of ROOT's src/ and cuda/."""
    for top in SOURCE_TOPS:
        for dirpath, dirnames, names in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for name in sorted(names):
                if not name.endswith(SUFFIXES):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for fn, start, length in functions(f.read()):
                        yield rel, fn, start, length


def long_functions(root, counted=None):
    for rel, fn, start, length in all_functions(root):
        if counted is not None:
            counted.append(rel)
        if length > LIMIT:
            yield rel, fn, start, length


def read_exceptions(path):
    allowed, problems = {}, []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 2)
            if len(parts) != 3 or not parts[0].isdigit():
                problems.append(f"{path}:{number}: expected 'LENGTH FILE NAME', got '{line}'")
                continue
            allowed[(parts[1], parts[2])] = int(parts[0])
    return allowed, problems


def check(root, exceptions):
    allowed, problems = read_exceptions(exceptions)
    notes, seen, count, counted = [], set(), 0, []
    for rel, fn, start, length in long_functions(root, counted):
        count += 1
        key = (rel, fn)
        seen.add(key)
        if key not in allowed:
            problems.append(f"{rel}:{start}: {fn} is {length} lines, more than {LIMIT}: split it "
                            f"(or, if deliberate, list it in {os.path.basename(exceptions)})")
        elif length > allowed[key]:
            problems.append(f"{rel}:{start}: {fn} grew to {length} lines, from the {allowed[key]} "
                            f"its exception allows: split it rather than raise the entry")
        elif length < allowed[key]:
            notes.append(f"note: {rel}:{start}: {fn} is {length} lines, its exception allows "
                         f"{allowed[key]}: lower the entry")
    for key in sorted(set(allowed) - seen):
        notes.append(f"note: {key[0]}: {key[1]} is no longer over {LIMIT} lines (or was renamed): "
                     "remove its exception")
    for line in notes + problems:
        print(line)
    print(f"function length: {len(counted)} functions in {len(set(counted))} files, {count} over "
          f"{LIMIT} lines, {len(allowed)} exception(s); {len(problems)} problem(s)")
    return 1 if problems else 0


def listing(root):
    rows = sorted(long_functions(root), key=lambda r: (-r[3], r[0], r[1]))
    for rel, fn, _, length in rows:
        print(f"{length} {rel} {fn}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--list":
        sys.exit(listing(args[1]))
    if len(args) != 2:
        sys.exit(__doc__)
    sys.exit(check(args[0], args[1]))
