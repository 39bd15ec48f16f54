//! `orcaops completion SHELL`: the shell's completion script, made by clap_complete from
//! the same definitions as `--help`, so it never lags behind a flag. In bash, kinds and
//! the names of live objects complete too: in the commands that take `KIND NAME`, the
//! kinds after the command, and after a kind the names `orcaops get KIND -o name` gives,
//! asked of the server the CLI would talk to (`ORCAOPS_SERVER`); nothing is offered
//! when none answers.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::client::exit;
use crate::resources::Kind;

pub const AFTER_HELP: &str = "\
Install it once:
  bash:        echo 'source <(orcaops completion bash)' >> ~/.bashrc
  zsh:         orcaops completion zsh > \"${fpath[1]}/_orcaops\"   (then start a new shell)
  fish:        orcaops completion fish > ~/.config/fish/completions/orcaops.fish
  PowerShell:  orcaops completion powershell | Out-String | Invoke-Expression

Commands and flags complete in every shell. In bash, kinds and the names of live
objects complete too: `orcaops logs job <TAB>` offers the jobs the server has (of the
workspace given with -n, or default).";

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The commands that take `KIND NAME`, as a bash `case` pattern.
const TAKES_KIND_NAME: &str =
    "get|describe|logs|delete|cancel|rerun|approve|suspend|resume|stop|start|history|diff|stats";

/// Bash's completion of kinds and live object names, wrapped around clap_complete's
/// `_orcaops`: in a command that takes `KIND NAME`, the kinds after the command and the
/// names of that kind after a kind; otherwise clap_complete's own answer. The kinds and
/// the words accepted for them come from [`Kind`], so a new kind completes too.
fn bash_live_names() -> String {
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.singular()).collect();
    let spellings: Vec<&str> = Kind::ALL
        .iter()
        .flat_map(|k| {
            [k.singular(), k.plural()]
                .into_iter()
                .chain(k.short_names().iter().copied())
        })
        .collect();
    format!(
        r#"
# Kinds, and names of live objects (orcaops completion): in a command that takes
# KIND NAME, the kinds after the command and the names after a kind.
_orcaops_live_names() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}}
    case ${{COMP_WORDS[1]}} in
        {commands}) ;;
        *) _orcaops "$@"; return ;;
    esac
    if [[ $COMP_CWORD -eq 2 && $cur != -* ]]; then
        COMPREPLY=($(compgen -W "{kinds}" -- "$cur"))
        return 0
    fi
    local kind=${{COMP_WORDS[COMP_CWORD-1]}}
    case $kind in
        {spellings})
            local namespace=() i names
            for ((i = 2; i < COMP_CWORD; i++)); do
                case ${{COMP_WORDS[i]}} in
                    -n|--namespace|--workspace) namespace=(-n "${{COMP_WORDS[i+1]}}") ;;
                esac
            done
            names=$(orcaops get "$kind" "${{namespace[@]}}" -o name 2>/dev/null) || names=
            COMPREPLY=($(compgen -W "$(printf '%s\n' $names | sed 's|.*/||')" -- "$cur"))
            return 0
            ;;
    esac
    _orcaops "$@"
}}
complete -F _orcaops_live_names -o nosort -o bashdefault -o default orcaops
"#,
        commands = TAKES_KIND_NAME,
        kinds = kinds.join(" "),
        spellings = spellings.join("|"),
    )
}

/// Prints the completion script of `args.shell`.
pub fn print(args: &CompletionArgs) -> u8 {
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut super::Cli::command(),
        "orcaops",
        &mut script,
    );
    if args.shell == Shell::Bash {
        script.extend_from_slice(bash_live_names().as_bytes());
    }
    // A closed pipe (`| head`) is the reader's choice, not an error worth a message.
    let _ = std::io::stdout().lock().write_all(&script);
    exit::OK
}
