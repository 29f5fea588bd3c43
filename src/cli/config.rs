//! The config file of `spinlet server` and `spinlet agent` (and of the commands that work
//! on their data dir: `killall`, `uninstall`, `certificate rotate|check`), as k3s reads its own:
//! `/etc/spinlet/config.yaml` (or `--config FILE`, env `SPINLET_CONFIG_FILE`), then every
//! `config.yaml.d/*.yaml` next to it in alphabetical order. Keys are the subcommand's long
//! flag names (`https-listen-port: 7443`, `tls-san: [a, b]`, `disable-agent: true`); a later
//! file replaces a key, `key+:` appends to a list flag instead. Precedence is
//! default < file < `SPINLET_*` environment < command line.
//!
//! How: the command line is parsed once by clap as usual (environment included). Then,
//! for every key of the files, `ArgMatches::value_source` says where the flag's value came
//! from; only when it came from its default (or nowhere) is the file's value used, added
//! as `--key=value` arguments, and the command line parsed again. So clap stays the only
//! parser and validator of values, the environment is never modified (sandboxes inherit
//! it), and a flag given on the command line or in the environment replaces the file's
//! value whole (lists are not merged with the file's). A value clap refuses is reported
//! with the key and the file it came from; an unknown key is an error naming both.
//!
//! Owns the reading and merging of the files and the argument list clap sees; knows no
//! flag by name except `config`, and touches nothing else.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

/// The config file read when `--config` is not given (only if it exists).
pub const DEFAULT_FILE: &str = "/etc/spinlet/config.yaml";

/// The id of the `--config` flag in the subcommands that read a config file.
const CONFIG_ID: &str = "config";

/// Why the command line could not be turned into a command.
#[derive(Debug)]
pub enum Error {
    /// clap's own error (usage, `--help`, `--version` included): printed by clap.
    Clap(clap::Error),
    /// A config file is unreadable or holds a bad key or value.
    Config(anyhow::Error),
}

/// How a subcommand treats keys it has no flag for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unknown {
    /// An error naming the key and the file (`server`, `agent`).
    Refuse,
    /// Skipped: for commands that share the server's file but take a few of its flags
    /// (`killall`, `uninstall`).
    Ignore,
}

/// One key after all files are merged.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The long flag name.
    pub key: String,
    /// Its values (one for a scalar, each element of a list).
    pub values: Vec<Scalar>,
    /// Whether the files gave a list (or appended).
    pub list: bool,
    /// The last file that set or extended it.
    pub file: PathBuf,
}

/// A scalar YAML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// Anything else, as text (numbers as written).
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Text(t) => t.clone(),
        }
    }
}

/// Parses `argv` into `T`, the config file filling in what neither the command line nor
/// the environment set, for the subcommands listed in `subcommands` with how each treats
/// unknown keys.
pub fn parse<T: CommandFactory + FromArgMatches>(
    argv: Vec<OsString>,
    subcommands: &[(&str, Unknown)],
) -> Result<T, Error> {
    let command = T::command();
    let matches = command
        .clone()
        .try_get_matches_from(&argv)
        .map_err(Error::Clap)?;
    // The innermost subcommand and its path (`server`, `certificate rotate`).
    let mut path = Vec::new();
    let mut sub_command = &command;
    let mut sub_matches = &matches;
    while let Some((name, m)) = sub_matches.subcommand() {
        let Some(c) = sub_command.find_subcommand(name) else {
            return T::from_arg_matches(&matches).map_err(Error::Clap);
        };
        path.push(name);
        sub_command = c;
        sub_matches = m;
    }
    let path = path.join(" ");
    let Some(&(_, unknown)) = subcommands.iter().find(|(n, _)| *n == path) else {
        return T::from_arg_matches(&matches).map_err(Error::Clap);
    };
    let (file, required) = match sub_matches.get_one::<PathBuf>(CONFIG_ID) {
        Some(f) => (f.clone(), true),
        None => (PathBuf::from(DEFAULT_FILE), false),
    };
    let settings = load(&file, required).map_err(Error::Config)?;
    let extra =
        arguments(sub_command, &path, sub_matches, &settings, unknown).map_err(Error::Config)?;
    if extra.is_empty() {
        return T::from_arg_matches(&matches).map_err(Error::Clap);
    }
    let mut full = argv;
    full.extend(extra.iter().flat_map(|(_, args)| args.iter().cloned()));
    match command.clone().try_get_matches_from(&full) {
        Ok(m) => T::from_arg_matches(&m).map_err(Error::Clap),
        Err(e) => Err(blame(sub_command, &extra, &settings).unwrap_or(Error::Clap(e))),
    }
}

/// Which file value clap refused, tried one key at a time: an error naming the key, the
/// value and the file.
fn blame(
    sub_command: &Command,
    extra: &[(String, Vec<OsString>)],
    settings: &[Setting],
) -> Option<Error> {
    for (key, args) in extra {
        let mut argv = vec![OsString::from(sub_command.get_name())];
        argv.extend(args.iter().cloned());
        if let Err(e) = sub_command.clone().try_get_matches_from(argv) {
            let setting = settings.iter().find(|s| &s.key == key)?;
            let values: Vec<String> = setting.values.iter().map(Scalar::text).collect();
            let why = e.to_string();
            let why = why
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            return Some(Error::Config(anyhow::anyhow!(
                "config file {}: key {key}: value {}: {why}",
                setting.file.display(),
                values.join(", ")
            )));
        }
    }
    None
}

/// The `--key=value` arguments the settings add: for each key whose flag took its value
/// from its default (or has none), the file's values. Paired with the key. `path` names
/// the subcommand in errors (`certificate rotate`).
pub fn arguments(
    sub_command: &Command,
    path: &str,
    matches: &ArgMatches,
    settings: &[Setting],
    unknown: Unknown,
) -> anyhow::Result<Vec<(String, Vec<OsString>)>> {
    let mut out = Vec::new();
    for setting in settings {
        let key = &setting.key;
        let file = setting.file.display();
        let arg = sub_command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !a.is_hide_set());
        let Some(arg) = arg.filter(|a| a.get_id() != CONFIG_ID) else {
            if unknown == Unknown::Ignore {
                continue;
            }
            if key == CONFIG_ID {
                bail!("config file {file}: key {key}: a config file cannot name another");
            }
            bail!(
                "config file {file}: unknown key {key:?} (keys are the long flag names of `spinlet {path}`; see --help)"
            );
        };
        match matches.value_source(arg.get_id().as_str()) {
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable) => continue,
            _ => {}
        }
        let mut args = Vec::new();
        match arg.get_action() {
            ArgAction::SetTrue => {
                let [Scalar::Bool(on)] = setting.values.as_slice() else {
                    bail!(
                        "config file {file}: key {key}: {} is not true or false",
                        show(setting)
                    );
                };
                if *on {
                    args.push(OsString::from(format!("--{key}")));
                }
            }
            ArgAction::Append => {
                for v in &setting.values {
                    args.push(OsString::from(format!("--{key}={}", v.text())));
                }
            }
            ArgAction::Set => {
                let [value] = setting.values.as_slice() else {
                    bail!(
                        "config file {file}: key {key} takes one value, not a list ({})",
                        show(setting)
                    );
                };
                args.push(OsString::from(format!("--{key}={}", value.text())));
            }
            other => bail!(
                "config file {file}: key {key}: flag kind {other:?} cannot be set from a file"
            ),
        }
        if !args.is_empty() {
            out.push((key.clone(), args));
        }
    }
    Ok(out)
}

fn show(setting: &Setting) -> String {
    let values: Vec<String> = setting.values.iter().map(Scalar::text).collect();
    if setting.list {
        format!("[{}]", values.join(", "))
    } else {
        values.join(", ")
    }
}

/// The drop-in folder of config file `file`: `<file>.d`.
pub fn drop_in_dir(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".d");
    PathBuf::from(name)
}

/// Reads `file` (an error when it is missing and `required`) and its drop-ins
/// (`<file>.d/*.yaml`, alphabetical), merged in that order.
pub fn load(file: &Path, required: bool) -> anyhow::Result<Vec<Setting>> {
    let mut settings = Vec::new();
    match std::fs::read_to_string(file) {
        Ok(text) => merge(&mut settings, file, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
        Err(e) => return Err(e).with_context(|| format!("reading config file {}", file.display())),
    }
    let dir = drop_in_dir(file);
    let mut drop_ins = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    drop_ins.push(path);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    }
    drop_ins.sort();
    for path in drop_ins {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        merge(&mut settings, &path, &text)?;
    }
    Ok(settings)
}

/// Merges one file's text into `settings`: a key replaces an earlier file's, `key+`
/// appends to it.
pub fn merge(settings: &mut Vec<Setting>, file: &Path, text: &str) -> anyhow::Result<()> {
    let shown = file.display();
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .with_context(|| format!("config file {shown} is not valid YAML"))?;
    let mapping = match value {
        serde_yaml_ng::Value::Null => return Ok(()),
        serde_yaml_ng::Value::Mapping(m) => m,
        _ => bail!("config file {shown}: expected a mapping of flag names to values"),
    };
    for (key, value) in mapping {
        let serde_yaml_ng::Value::String(key) = key else {
            bail!("config file {shown}: key {key:?} is not a flag name");
        };
        let (name, append) = match key.strip_suffix('+') {
            Some(name) => (name.to_string(), true),
            None => (key.clone(), false),
        };
        let (values, list) = match value {
            serde_yaml_ng::Value::Sequence(items) => {
                let mut values = Vec::new();
                for item in items {
                    values.push(scalar(&item).with_context(|| {
                        format!("config file {shown}: key {key}: list items must be scalars")
                    })?);
                }
                (values, true)
            }
            other => (
                vec![scalar(&other).with_context(|| {
                    format!("config file {shown}: key {key}: expected a value or a list")
                })?],
                false,
            ),
        };
        match settings.iter_mut().find(|s| s.key == name) {
            Some(existing) if append => {
                existing.values.extend(values);
                existing.list = true;
                existing.file = file.to_path_buf();
            }
            Some(existing) => {
                *existing = Setting {
                    key: name,
                    values,
                    list,
                    file: file.to_path_buf(),
                }
            }
            None => settings.push(Setting {
                key: name,
                values,
                list: list || append,
                file: file.to_path_buf(),
            }),
        }
    }
    Ok(())
}

fn scalar(value: &serde_yaml_ng::Value) -> anyhow::Result<Scalar> {
    Ok(match value {
        serde_yaml_ng::Value::Bool(b) => Scalar::Bool(*b),
        serde_yaml_ng::Value::String(s) => Scalar::Text(s.clone()),
        serde_yaml_ng::Value::Number(n) => Scalar::Text(n.to_string()),
        other => bail!("{other:?} is not a scalar"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `spinlet server`'s flags: a number with a default, a list, a switch,
    /// an optional value and the `--config` flag. No `env` here: the environment's place
    /// in the precedence is pinned by integration/tests/config.rs with the real binary.
    #[derive(clap::Parser, Debug, PartialEq)]
    struct Top {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(clap::Subcommand, Debug, PartialEq)]
    enum Sub {
        Server(Flags),
        /// Nested, as `spinlet certificate rotate`.
        #[command(subcommand)]
        Certificate(Cert),
    }

    #[derive(clap::Subcommand, Debug, PartialEq)]
    enum Cert {
        Rotate {
            #[arg(long)]
            config: Option<PathBuf>,
            #[arg(long)]
            data_dir: Option<PathBuf>,
        },
    }

    #[derive(clap::Args, Debug, PartialEq)]
    struct Flags {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 6443)]
        https_listen_port: u16,
        #[arg(long = "tls-san", value_delimiter = ',')]
        tls_san: Vec<String>,
        #[arg(long)]
        disable_agent: bool,
        #[arg(long)]
        node_name: Option<String>,
    }

    fn parse_with(files: &[(&str, &str)], args: &[&str]) -> Result<Flags, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let main = dir.path().join("config.yaml");
        std::fs::create_dir_all(drop_in_dir(&main)).map_err(|e| e.to_string())?;
        for (name, text) in files {
            let path = if *name == "config.yaml" {
                main.clone()
            } else {
                drop_in_dir(&main).join(name)
            };
            std::fs::write(path, text).map_err(|e| e.to_string())?;
        }
        let mut argv: Vec<OsString> = vec!["spinlet".into(), "server".into()];
        argv.push(format!("--config={}", main.display()).into());
        argv.extend(args.iter().map(OsString::from));
        match parse::<Top>(argv, &[("server", Unknown::Refuse)]) {
            Ok(Top {
                command: Sub::Server(f),
            }) => Ok(Flags { config: None, ..f }),
            Ok(other) => Err(format!("parsed as {other:?}")),
            Err(Error::Clap(e)) => Err(e.to_string()),
            Err(Error::Config(e)) => Err(format!("{e:#}")),
        }
    }

    #[test]
    fn the_file_beats_defaults_and_the_command_line_beats_the_file() {
        let file =
            "https-listen-port: 7443\ntls-san: [a, b]\ndisable-agent: true\nnode-name: edge\n";
        let f = parse_with(&[("config.yaml", file)], &[]).unwrap();
        assert_eq!(f.https_listen_port, 7443);
        assert_eq!(f.tls_san, ["a", "b"]);
        assert!(f.disable_agent);
        assert_eq!(f.node_name.as_deref(), Some("edge"));

        let f = parse_with(
            &[("config.yaml", file)],
            &[
                "--https-listen-port",
                "8443",
                "--tls-san",
                "c",
                "--node-name=cli",
            ],
        )
        .unwrap();
        assert_eq!(f.https_listen_port, 8443);
        assert_eq!(
            f.tls_san,
            ["c"],
            "a list on the command line replaces the file's"
        );
        assert_eq!(f.node_name.as_deref(), Some("cli"));
        assert!(f.disable_agent);
    }

    #[test]
    fn no_file_leaves_the_defaults() {
        let f = parse_with(&[], &[]).unwrap_err();
        assert!(f.contains("reading config file"), "{f}");
        let f = parse_with(&[("config.yaml", "")], &[]).unwrap();
        assert_eq!(f.https_listen_port, 6443);
        assert!(f.tls_san.is_empty());
        assert!(!f.disable_agent);
    }

    #[test]
    fn drop_ins_apply_alphabetically_and_plus_appends() {
        let f = parse_with(
            &[
                ("config.yaml", "https-listen-port: 1000\ntls-san: [a]\n"),
                ("20-b.yaml", "https-listen-port: 3000\ntls-san+: [c]\n"),
                ("10-a.yaml", "https-listen-port: 2000\ntls-san+: b\n"),
                ("30-ignored.yml", "https-listen-port: 9999\n"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(f.https_listen_port, 3000);
        assert_eq!(f.tls_san, ["a", "b", "c"]);

        let f = parse_with(
            &[
                ("config.yaml", "tls-san: [a]\n"),
                ("10.yaml", "tls-san: [z]\n"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(f.tls_san, ["z"], "a key without + replaces");
    }

    #[test]
    fn an_unknown_key_names_the_key_and_the_file() {
        let e = parse_with(
            &[("config.yaml", ""), ("10-x.yaml", "https-port: 1\n")],
            &[],
        )
        .unwrap_err();
        assert!(e.contains("unknown key \"https-port\""), "{e}");
        assert!(e.contains("config.yaml.d/10-x.yaml"), "{e}");
    }

    #[test]
    fn a_bad_value_names_the_key_the_value_and_the_file() {
        let e = parse_with(&[("config.yaml", "https-listen-port: lots\n")], &[]).unwrap_err();
        assert!(e.contains("key https-listen-port: value lots"), "{e}");
        assert!(e.contains("config.yaml"), "{e}");
        let e = parse_with(&[("config.yaml", "https-listen-port: [1, 2]\n")], &[]).unwrap_err();
        assert!(e.contains("takes one value"), "{e}");
        let e = parse_with(&[("config.yaml", "disable-agent: maybe\n")], &[]).unwrap_err();
        assert!(e.contains("not true or false"), "{e}");
        let e = parse_with(&[("config.yaml", "- a\n- b\n")], &[]).unwrap_err();
        assert!(e.contains("expected a mapping"), "{e}");
        let e = parse_with(&[("config.yaml", "config: /x\n")], &[]).unwrap_err();
        assert!(e.contains("cannot name another"), "{e}");
    }

    #[test]
    fn a_nested_subcommand_reads_its_keys_and_ignores_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("config.yaml");
        std::fs::write(&main, "data-dir: /srv/spinlet\nhttps-listen-port: 7443\n").unwrap();
        let argv = |extra: &[&str]| {
            let mut v: Vec<OsString> =
                vec!["spinlet".into(), "certificate".into(), "rotate".into()];
            v.push(format!("--config={}", main.display()).into());
            v.extend(extra.iter().map(OsString::from));
            v
        };
        let rotate = |extra: &[&str], unknown| match parse::<Top>(
            argv(extra),
            &[("certificate rotate", unknown)],
        ) {
            Ok(Top {
                command: Sub::Certificate(Cert::Rotate { data_dir, .. }),
            }) => Ok(data_dir),
            Ok(other) => Err(format!("parsed as {other:?}")),
            Err(Error::Clap(e)) => Err(e.to_string()),
            Err(Error::Config(e)) => Err(format!("{e:#}")),
        };
        assert_eq!(
            rotate(&[], Unknown::Ignore).unwrap(),
            Some(PathBuf::from("/srv/spinlet"))
        );
        assert_eq!(
            rotate(&["--data-dir=/flag"], Unknown::Ignore).unwrap(),
            Some(PathBuf::from("/flag"))
        );
        let e = rotate(&[], Unknown::Refuse).unwrap_err();
        assert!(
            e.contains("https-listen-port") && e.contains("spinlet certificate rotate"),
            "{e}"
        );
    }

    #[test]
    fn a_false_switch_leaves_the_default() {
        let f = parse_with(&[("config.yaml", "disable-agent: false\n")], &[]).unwrap();
        assert!(!f.disable_agent);
    }
}
