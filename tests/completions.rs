//! The completion scripts work in the shell they are for: the bash script is sourced in a real
//! bash and asked to complete, as bash would on TAB.

mod common;

use common::*;

/// Sources `consul-doctor completions bash` and completes the words (the last one is the word
/// under the cursor); returns COMPREPLY, one entry per line.
fn complete_bash(words: &[&str]) -> Vec<String> {
    let run = run_doctor(&["completions", "bash"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("consul-doctor.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_LINE='{}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         fn=$(complete -p consul-doctor | sed -E 's/.*-F ([^ ]+).*/\\1/')\n\
         \"$fn\" consul-doctor '{}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words.join(" "),
        words[cword],
    );
    let out =
        std::process::Command::new("bash").args(["--norc", "--noprofile", "-c", &program]).output().expect("run bash");
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[test]
fn bash_completes_the_flags_of_a_subcommand() {
    assert_eq!(complete_bash(&["consul-doctor", "check", "--fo"]), ["--format"]);
    let fail = complete_bash(&["consul-doctor", "check", "--fa"]);
    assert_eq!(fail, ["--fail-on"]);
    assert_eq!(complete_bash(&["consul-doctor", "check", "--format", ""]), ["human", "json", "junit"]);
    assert_eq!(complete_bash(&["consul-doctor", "ch"]), ["check"]);
}

#[test]
fn bash_completes_explain_with_the_codes() {
    let acl = complete_bash(&["consul-doctor", "explain", "ACL-00"]);
    assert!(acl.iter().any(|c| c == "ACL-002"), "{acl:?}");
    assert!(acl.iter().all(|c| c.starts_with("ACL-00")), "{acl:?}");
    let all = complete_bash(&["consul-doctor", "explain", ""]);
    for code in consul_doctor::codes::ALL {
        assert!(all.iter().any(|c| c == code.code), "{} not offered: {all:?}", code.code);
    }
}

#[test]
fn zsh_and_fish_scripts_offer_the_codes_too() {
    for shell in ["zsh", "fish"] {
        let run = run_doctor(&["completions", shell], &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains("ACL-002"), "{shell} script does not offer codes");
    }
}

#[test]
fn fish_completes_codes_for_explain() {
    let run = run_doctor(&["completions", "fish"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let script = &run.stdout;
    let at = script
        .find("-n \"__fish_consul_doctor_using_subcommand explain\" -f -a \"")
        .expect("a value completion for explain's code");
    let values = &script[at..];
    let values = &values[..values.find("\"\n").unwrap()];
    for code in consul_doctor::codes::ALL {
        assert!(
            values.contains(&format!("\n{}\\t'", code.code)) || values.contains(&format!("\"{}\\t'", code.code)),
            "{} not offered",
            code.code
        );
    }
}
