"""Reading cards: load the files, parse the front matter, validate and scan each side once (prose,
math, code, clozes, TeX), run the reader checks, render the fields (images, sanitiser) and compile
them all, in parallel and through the cache. Nothing here knows about releases or dist/."""
