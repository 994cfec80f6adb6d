//! A second kind of writing, end to end: a steward (or facilitator) puts a
//! question to their cohort; members read it as a question from them, the
//! researcher's export names its kind; a plain member cannot put one.

use kith_tests::{Relay, Study, kith, kith_plain, kith_raw};
use serde_json::Value;

fn items(listing: &Value) -> Vec<(String, String, String)> {
    let mut all: Vec<_> = listing["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["author"].as_str().unwrap().to_owned(),
                c["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn a_steward_puts_a_question_to_the_cohort() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = Study::start(base.path(), &relay);
    let (steward, alex) = (study.steward.clone(), study.dir("alex"));
    study.member("Alex", "alex");

    let question = "What helped most since we last met?";
    let posted = kith(&["prompt", "--data-dir", &steward, "--text", question]);
    // A typo fixed: a prompt is its writer's own, like a reflection.
    let id = posted["contribution_id"].as_str().unwrap();
    let question = "What helped you most since we last met?";
    kith(&[
        "edit",
        "--data-dir",
        &steward,
        "--id",
        id,
        "--text",
        question,
    ]);
    kith(&["sync", "--data-dir", &steward]);

    let refused = kith_raw(&["prompt", "--data-dir", &alex, "--text", "Can I ask too?"]);
    assert!(!refused.status.success());
    let said = String::from_utf8(refused.stderr).unwrap();
    assert!(said.contains("only a facilitator or a steward"), "{said}");

    kith(&[
        "contribute",
        "--data-dir",
        &alex,
        "--text",
        "Talking to my sister.",
    ]);
    kith(&["sync", "--data-dir", &alex]);
    let expected = vec![
        ("prompt".to_owned(), "Sam".to_owned(), question.to_owned()),
        (
            "reflection".to_owned(),
            "Alex".to_owned(),
            "Talking to my sister.".to_owned(),
        ),
    ];
    assert_eq!(items(&kith(&["list", "--data-dir", &alex])), expected);
    let shown = kith_plain(&["list", "--data-dir", &alex]);
    assert!(shown.contains("Question from Sam"), "{shown}");

    let exported = study.export();
    assert_eq!(items(&exported), expected);
    let csv = study.dir("export.csv");
    kith(&[
        "export",
        "--data-dir",
        &study.researcher,
        "--identity",
        &study.key,
        "--format",
        "csv",
        "--out",
        &csv,
    ]);
    let csv = std::fs::read_to_string(csv).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.ends_with(",prompt,") && l.contains(question)),
        "{csv}"
    );

    // Members answer it; each answer names the question, in every reader's
    // list and in the researcher's export. One is for the research team only.
    let answer = "Walking the dog every morning.";
    kith(&["respond", "--data-dir", &alex, "--to", id, "--text", answer]);
    let private = "Not drinking at weekends.";
    kith(&[
        "respond",
        "--data-dir",
        &alex,
        "--to",
        id,
        "--text",
        private,
        "--scope",
        "research",
    ]);
    kith(&["sync", "--data-dir", &alex]);
    kith(&["sync", "--data-dir", &steward]);
    let answers_of = |listing: &Value| -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = listing["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "response")
            .map(|c| {
                assert_eq!(c["prompt"], id, "{c}");
                assert_eq!(c["author"], "Alex", "{c}");
                (
                    c["text"].as_str().unwrap().to_owned(),
                    c["research_only"].to_string(),
                )
            })
            .collect();
        found.sort();
        found
    };
    let cohort_answer = (answer.to_owned(), "false".to_owned());
    let private_answer = (private.to_owned(), "true".to_owned());
    assert_eq!(
        answers_of(&kith(&["list", "--data-dir", &steward])),
        vec![cohort_answer.clone()],
        "the steward reads the cohort's answers, not the research-only one"
    );
    assert_eq!(
        answers_of(&study.export()),
        vec![private_answer, cohort_answer]
    );
    let shown = kith_plain(&["list", "--data-dir", &alex]);
    assert!(
        shown.contains(&format!("Alex, answering question [{id}]")),
        "{shown}"
    );

    // An answer to a question this device has not got is refused, saying why.
    let stray = "0123456789abcdef0123456789abcdef";
    let refused = kith_raw(&[
        "respond",
        "--data-dir",
        &alex,
        "--to",
        stray,
        "--text",
        "Hm",
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8(refused.stderr).unwrap();
    assert!(
        said.contains("no question with the id") && said.contains("kith list"),
        "{said}"
    );
}
