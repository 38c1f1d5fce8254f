# bash completion for certvault(1): commands, options, key types, hashes and the
# nicknames of the selected vault. The commands and their options come from the CLI itself
# (certvault --list-commands), the nicknames from `certvault list --names` (no PIN).

_certvault() {
  local cli=${COMP_WORDS[0]}
  local cur=${COMP_WORDS[COMP_CWORD]}
  local prev=""
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  COMPREPLY=()

  local table
  table=$("$cli" --list-commands 2>/dev/null) || return 0

  # The options of a command ("" is certvault itself); --out= takes a value.
  _certvault_options() {
    local line
    while IFS= read -r line; do
      if [[ ${line%%$'\t'*} == "$1" ]]; then
        printf '%s\n' ${line#*$'\t'}
        return
      fi
    done <<<"$table"
  }
  _certvault_takes_value() {
    local path=$1 option=$2
    _certvault_options "" | grep -qx -- "$option=" && return 0
    [[ -n $path ]] && _certvault_options "$path" | grep -qx -- "$option="
  }

  # Walk the words before the cursor: the command path, the vault, the arguments given.
  local path="" i word args=0
  local -a vault=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    case $word in
      --vault=*) vault=("$word") ;;
      --vault)
        ((i + 1 < COMP_CWORD)) && vault=(--vault "${COMP_WORDS[i + 1]}")
        ((i++))
        ;;
      --*=*) ;;
      -*) _certvault_takes_value "$path" "$word" && ((i++)) ;;
      *)
        local next=${path:+$path }$word
        if grep -q "^$next"$'\t' <<<"$table"; then
          path=$next
          args=0
        else
          ((args++))
        fi
        ;;
    esac
  done

  # The value of an option.
  if [[ $prev == -* ]] && _certvault_takes_value "$path" "$prev"; then
    local -a words=()
    case $prev in
      --key-type | --default-key-type)
        words=(ec-p256 ec-p384 rsa-2048 rsa-3072 rsa-4096 ed25519) ;;
      --hash | --default-hash) words=(sha256 sha384 sha512) ;;
      --encryption) words=(aes-256 3des) ;;
      --export) words=(once never) ;;
      --format) words=(text json prometheus) ;;
      --sort) words=(expiry name created) ;;
      --status) words=(active expired disabled pending superseded) ;;
      --nickname | --cmp-cert)
        mapfile -t words < <("$cli" "${vault[@]}" list --names 2>/dev/null) ;;
      --vault | --serve | --default)
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        return 0
        ;;
      --end-date | --max-end-date | --since | --ttl | --renew-every | --summary-every | \
        --before | --at | --then | --subject | --san | --label | --uid | --gid | --unit | \
        --cmp | --acme | --issuer | --reason | --generation | --within | --expiring | \
        --mode | --owner | --next-update | --max-lifetime | --renew-before | --renew-at | \
        --http01-listen | --dns01-hook | --eab | --cmp-ref | --audit-log-max | \
        --max-connections | --max-connections-per-user)
        return 0 ;;
      *)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    esac
    mapfile -t COMPREPLY < <(compgen -W "${words[*]}" -- "$cur")
    return 0
  fi

  if [[ $cur == -* ]]; then
    local -a options
    mapfile -t options < <({
      _certvault_options ""
      [[ -n $path ]] && _certvault_options "$path"
    } | grep -- '^-' | sed 's/=$//' | sort -u)
    mapfile -t COMPREPLY < <(compgen -W "${options[*]}" -- "$cur")
    return 0
  fi

  # The commands under this one, else its arguments.
  local -a commands
  mapfile -t commands < <(sed -n "s/^${path:+$path }\([^ $'\t']*\)"$'\t'".*/\1/p" <<<"$table")
  if ((${#commands[@]})); then
    mapfile -t COMPREPLY < <(compgen -W "${commands[*]}" -- "$cur")
    return 0
  fi
  local arguments
  arguments=$(_certvault_options "$path" | grep '^<')
  if [[ $arguments == *"<NICKNAME>"* ]] && { ((args == 0)) || [[ $path == renew ]]; }; then
    # Nicknames may hold spaces: one reply a line, quoted for the command line.
    local name
    while IFS= read -r name; do
      [[ $name == "$cur"* ]] && COMPREPLY+=("$(printf '%q' "$name")")
    done < <("$cli" "${vault[@]}" list --names 2>/dev/null)
  elif [[ $path == access ]] && ((args == 1)); then
    mapfile -t COMPREPLY < <(compgen -W "show allow deny forget reset public private" -- "$cur")
  elif [[ -n $arguments ]]; then
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  fi
  return 0
}

complete -F _certvault certvault
