//! The README's CLI section against `quasar --help`: every command the binary has is in
//! the README, every command the README names exists, and each one's flags are the same
//! set in both.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_quasar"))
        .args(args)
        .arg("--help")
        .output()
        .expect("running quasar");
    assert!(out.status.success(), "{args:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The names under `Commands:` of a help text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// Flags named in `--help`'s options, less the global ones.
fn flags_of_help(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .filter_map(|l| {
            let t = l.trim_start();
            // A short flag first (`-h, --help`): the long one follows it.
            let t = match t.as_bytes() {
                [b'-', c, b',', b' ', ..] if *c != b'-' => &t[4..],
                _ => t,
            };
            t.strip_prefix("--")
                .map(|f| f.split([' ', '<', '=']).next().unwrap_or("").to_string())
        })
        .filter(|f| !matches!(f.as_str(), "log" | "threads" | "help" | "version" | ""))
        .map(|f| format!("--{f}"))
        .collect()
}

fn flags_in(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("--").filter_map(move |(i, _)| {
        let rest = &text[i + 2..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        (end > 0 && !text[..i].ends_with('-')).then(|| format!("--{}", &rest[..end]))
    })
}

/// The README's CLI block: each `quasar <command…>` entry with the flags of its synopsis
/// (the entry's first line and the lines that continue it with `[` or `--`).
fn readme_commands() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let block: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != "## CLI")
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert!(!block.is_empty(), "the README has a CLI block");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in block {
        if let Some(rest) = line.strip_prefix("quasar ") {
            let words: Vec<&str> = rest
                .split_whitespace()
                .take_while(|w| {
                    w.starts_with(|c: char| c.is_ascii_lowercase())
                        && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                })
                .collect();
            if words.is_empty() {
                current = None; // `quasar [--log FILTER] …`
                continue;
            }
            let name = words.join(" ");
            out.entry(name.clone()).or_default().extend(flags_in(rest));
            current = Some(name);
        } else if let Some(name) = &current {
            let t = line.trim_start();
            if t.starts_with('[') || t.starts_with("--") {
                out.get_mut(name).unwrap().extend(flags_in(t));
            } else {
                current = None;
            }
        }
    }
    out
}

#[test]
fn the_readme_cli_section_matches_quasar_help() {
    let mut binary: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for top in subcommands(&help(&[])) {
        let h = help(&[&top]);
        let subs = subcommands(&h);
        if subs.is_empty() {
            binary.insert(top.clone(), flags_of_help(&h));
        }
        for sub in subs {
            binary.insert(format!("{top} {sub}"), flags_of_help(&help(&[&top, &sub])));
        }
    }
    assert!(binary.contains_key("dev") && binary.contains_key("node"));
    let readme = readme_commands();
    let names = |m: &BTreeMap<String, BTreeSet<String>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&readme),
        names(&binary),
        "the README's commands are the binary's"
    );
    for (cmd, flags) in &binary {
        assert_eq!(&readme[cmd], flags, "the flags of `quasar {cmd}`");
    }
}
