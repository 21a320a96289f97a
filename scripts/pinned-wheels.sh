# Sourced by the install scripts: installs a pinned requirements file into a directory with pip
# (`--no-deps --target`), idempotently.
#
#   install_pinned REQUIREMENTS DEST [FIXUP]
#
# Does nothing when DEST/.installed equals REQUIREMENTS (the last install is current). Otherwise installs next to
# the old tree, runs `FIXUP NEWDIR` if given (a function of the caller: symlinks and the like), records
# REQUIREMENTS as the stamp and swaps the new tree in, so a failed or interrupted install leaves the old one
# usable. Returns 0 when it installed, 1 when there was nothing to do.
install_pinned() {
  local req="$1" dest="$2" fixup="${3:-}"
  if [[ -f "$dest/.installed" ]] && cmp -s "$dest/.installed" "$req"; then
    return 1
  fi
  local new="$dest.new.$$" old="$dest.old.$$"
  # Whatever fails from here on (pip, the fixup), the half-made tree goes.
  trap "rm -rf '$new'" EXIT
  rm -rf "$new"
  mkdir -p "$new"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --target "$new" -r "$req"
  if [[ -n "$fixup" ]]; then "$fixup" "$new"; fi
  cp "$req" "$new/.installed"
  if [[ -e "$dest" ]]; then mv "$dest" "$old"; fi
  mv "$new" "$dest"
  trap - EXIT
  rm -rf "$old"
  return 0
}
