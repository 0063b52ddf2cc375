#!/usr/bin/env python3
"""Every link of the built book that stays inside it must lead somewhere: the file exists and,
with a #fragment, an element of that id is in it. Links out of the book (http, https, mailto)
are counted, not fetched: the check runs offline.

  linkcheck.py BOOK_DIR
"""

import html.parser
import os
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key) and tag in ("a", "img", "link", "script"):
                self.links.append(attrs[key])


def parse(path, cache):
    if path not in cache:
        page = Page()
        with open(path, encoding="utf-8") as file:
            page.feed(file.read())
        cache[path] = page
    return cache[path]


def main():
    root = os.path.abspath(sys.argv[1])
    cache, broken, external, checked = {}, [], 0, 0
    for directory, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".html") or name in ("print.html", "404.html", "toc.html"):
                continue
            path = os.path.join(directory, name)
            for link in parse(path, cache).links:
                parsed = urllib.parse.urlparse(link)
                if parsed.scheme in ("http", "https", "mailto"):
                    external += 1
                    continue
                if parsed.scheme or link.startswith("javascript:"):
                    continue
                checked += 1
                target = path if not parsed.path else os.path.normpath(os.path.join(directory, urllib.parse.unquote(parsed.path)))
                if os.path.isdir(target):
                    target = os.path.join(target, "index.html")
                where = os.path.relpath(path, root)
                if not os.path.exists(target):
                    broken.append(f"{where}: {link} (no such file)")
                elif parsed.fragment and target.endswith(".html") and parsed.fragment not in parse(target, cache).ids:
                    broken.append(f"{where}: {link} (no element with id {parsed.fragment})")
    for line in broken:
        print(f"broken link: {line}", file=sys.stderr)
    print(f"{checked} links inside the book checked, {len(broken)} broken; {external} links out of it not fetched")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
