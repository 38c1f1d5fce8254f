#!/bin/sh
# The man pages as a user reads them: man renders each without a warning, and certvault(1)
# names every command the CLI knows (certvault --list-commands), so a new command without
# documentation fails here.
set -eu
cli=$1
dir=$2
fail=0
command -v man >/dev/null || { echo "man is not installed (apt-get install man-db)"; exit 1; }
for page in "$dir"/*.[1-8]; do
  err=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
  if [ -n "$err" ]; then
    echo "$(basename "$page"): man warns: $err"
    fail=1
  fi
done
# One line per command, never hyphenated or wrapped.
text=$(LC_ALL=C MANWIDTH=1000 man -l "$dir/certvault.1" 2>/dev/null | tr -s ' ')
commands=$("$cli" --list-commands | cut -f1 | grep -v '^$')
[ -n "$commands" ] || { echo "certvault --list-commands listed no command"; exit 1; }
echo "$commands" | while IFS= read -r command; do
  case $text in
    *"certvault $command"*) ;;
    *) echo "certvault(1) does not describe 'certvault $command'"; exit 1 ;;
  esac
done || fail=1
exit $fail
