-- Turns the Markdown under docs/ into man pages (pandoc -t man --lua-filter man.lua).
-- A page's source under man/ holds what only the man page has (NAME, SYNOPSIS, FILES,
-- ENVIRONMENT, SEE ALSO) and pulls the body from docs/ with a Div:
--   ::: {include="cli.md"}
--   :::
-- The docs stay the one source of truth: this filter only reshapes them for man.

-- docs/X.md is this man page; any other doc is named as a file of the documentation.
local pages = {
  ["cli.md"] = "certvault(1)",
  ["agent.md"] = "certvault-agent(8)",
  ["provider.md"] = "certvault.so(7)",
  ["pkcs11.md"] = "libcertvault-pkcs11(7)",
  ["vault-format.md"] = "certvault-vault(5)",
}

local function stringify(x)
  return pandoc.utils.stringify(x)
end

-- Where the other docs are installed: -M docdir=DIR.
local doc_dir = nil

-- Links: to another doc, its man page or its installed file; to a web page, the text and
-- the address; within the source tree or a doc, the text alone.
local function Link(link)
  local file = link.target:match("^([%w%-_]+%.md)") or link.target:match("/([%w%-_]+%.md)")
  local text = stringify(link.content)
  if file then
    local ref = pages[file] or ((doc_dir and (doc_dir .. "/") or "") .. file)
    if text == file or text == ref then
      return pandoc.Emph(pandoc.Str(ref))
    end
    return { table.unpack(link.content), pandoc.Space(), pandoc.Str("(" .. ref .. ")") }
  end
  if not link.target:match("^%a+:") or text == link.target then
    return link.content
  end
  return { table.unpack(link.content), pandoc.Space(), pandoc.Str("<" .. link.target .. ">") }
end

-- Tables become tagged paragraphs (.TP): tbl tables do not fit 80 columns.
local function Table(tbl)
  local heads = {}
  if tbl.head and tbl.head.rows and #tbl.head.rows > 0 then
    for i, cell in ipairs(tbl.head.rows[1].cells) do heads[i] = stringify(cell.contents) end
  end
  local items = {}
  for _, body in ipairs(tbl.bodies) do
    for _, row in ipairs(body.body) do
      local cells = row.cells
      local term = pandoc.utils.blocks_to_inlines(cells[1].contents)
      -- Two columns: the second is the definition. More: "heading: value; heading: value".
      local def = {}
      for i = 2, #cells do
        if #def > 0 then table.insert(def, pandoc.Str(";")) table.insert(def, pandoc.Space()) end
        if #cells > 2 and heads[i] and heads[i] ~= "" then
          table.insert(def, pandoc.Strong(pandoc.Str(heads[i] .. ":")))
          table.insert(def, pandoc.Space())
        end
        for _, x in ipairs(pandoc.utils.blocks_to_inlines(cells[i].contents)) do
          table.insert(def, x)
        end
      end
      table.insert(items, { term, { pandoc.Para(def) } })
    end
  end
  return pandoc.DefinitionList(items)
end

-- The doc's title (level 1) goes; its sections become the page's sections (upper case,
-- as man pages have them) and subsections.
local function shift(blocks)
  local out = {}
  for _, b in ipairs(blocks) do
    if b.t == "Header" then
      if b.level > 1 then
        b.level = b.level - 1
        if b.level == 1 then
          b = pandoc.Header(1, stringify(b.content):upper())
        end
        table.insert(out, b)
      end
    else
      table.insert(out, b)
    end
  end
  return out
end

-- The docs directory: -M docs=DIR (CMake passes the source tree's).
local docs_dir = "docs"

local function include(div)
  local file = div.attributes["include"]
  if not file then return nil end
  local f = assert(io.open(docs_dir .. "/" .. file, "r"))
  local text = f:read("a")
  f:close()
  local doc = pandoc.read(text, "markdown-smart")
  return shift(doc.blocks)
end

local function Pandoc(doc)
  if doc.meta.docs then docs_dir = stringify(doc.meta.docs) end
  if doc.meta.docdir then doc_dir = stringify(doc.meta.docdir) end
  doc.meta.docs = nil
  doc.meta.docdir = nil
  return doc:walk({ Div = include })
end

return {
  { Pandoc = Pandoc },
  { Link = Link, Table = Table },
}
