//! The subscriber state machine against a model: random sequences of form requests (by
//! the owner or a stranger, with any name, frequency and topics), clicks on any
//! confirmation link ever mailed (or a forged one), unsubscribes, preference changes and
//! bounces, run through the service functions on the real store (a SQLite file, or
//! PostgreSQL when `HERALD_TEST_DATABASE_URL` is set). After every step the store must
//! agree with the model, whose rules are the promises:
//! - only the newest unused link of an address confirms, and only once;
//! - a confirmed or departed person's choices change only through their own links;
//! - nobody is confirmed without following a link that was mailed to them;
//! - an erased person leaves nothing but their place on the suppression list, their links
//!   die with them, and only their own request, confirmed by its link, takes them off it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Utc;
use herald::config::Settings;
use herald::domain::{Actor, EmailAddress, Frequency, SubscriberEvent, SubscriberSource, SubscriberStatus};
use herald::startup::App;
use herald::store::subscribers::{Confirmed, SubscriberPatch};
use herald::subscribers::SubscribeRequest;
use mail_parser::MessageParser;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const ADDRESSES: usize = 2;
const TOPICS: [&str; 3] = ["wildlife", "water-quality", "birds"];

#[derive(Debug, Clone, PartialEq)]
struct Choices {
    name: Option<String>,
    frequency: Frequency,
    topics: Vec<String>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Someone (the owner or a stranger: the form cannot tell) asks for an address.
    Request { who: usize, choices: Choices },
    /// The owner follows the `n`-th confirmation link ever mailed (to anyone, modulo count).
    Click { n: usize },
    /// A link nobody was sent.
    Forged,
    /// The owner's unsubscribe link (only once they have it: after a confirmation).
    Unsubscribe { who: usize },
    /// The owner's preferences form.
    Preferences {
        who: usize,
        frequency: Frequency,
        topics: Vec<String>,
    },
    /// The address bounces permanently.
    Bounce { who: usize },
    /// An admin erases the person at their request.
    Erase { who: usize },
}

fn choices() -> impl Strategy<Value = Choices> {
    (
        prop_oneof![
            Just(None),
            Just(Some("Owner".to_owned())),
            Just(Some("Stranger".to_owned()))
        ],
        frequency(),
        topics(),
    )
        .prop_map(|(name, frequency, topics)| Choices {
            name,
            frequency,
            topics,
        })
}

fn frequency() -> impl Strategy<Value = Frequency> {
    prop_oneof![
        Just(Frequency::Immediate),
        Just(Frequency::Daily),
        Just(Frequency::Weekly),
        Just(Frequency::Monthly)
    ]
}

fn topics() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(TOPICS.to_vec(), 0..=2).prop_map(|t| t.into_iter().map(str::to_owned).collect())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..ADDRESSES, choices()).prop_map(|(who, choices)| Op::Request { who, choices }),
        4 => any::<usize>().prop_map(|n| Op::Click { n }),
        1 => Just(Op::Forged),
        2 => (0..ADDRESSES).prop_map(|who| Op::Unsubscribe { who }),
        2 => (0..ADDRESSES, frequency(), topics())
            .prop_map(|(who, frequency, topics)| Op::Preferences { who, frequency, topics }),
        1 => (0..ADDRESSES).prop_map(|who| Op::Bounce { who }),
        1 => (0..ADDRESSES).prop_map(|who| Op::Erase { who }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Live,
    Used,
    Void,
    /// Its subscriber was erased, and the link with them.
    Gone,
}

/// What must be true of one address.
#[derive(Debug, Clone)]
struct Person {
    status: SubscriberStatus,
    choices: Choices,
    /// Has the preferences/unsubscribe link (it is shown once confirmed).
    has_manage_link: bool,
    mailed: bool,
}

#[derive(Debug, Default)]
struct Model {
    people: HashMap<usize, Person>,
    /// Every confirmation link mailed: (address, choices it carries, state).
    links: Vec<(usize, Choices, Link)>,
    /// `confirm_resend_minutes` is 0 (every request mails) or large (only the first does).
    resend_pause: bool,
    /// Addresses on the suppression list.
    erased: std::collections::HashSet<usize>,
}

impl Model {
    fn void_links(&mut self, who: usize) {
        for link in self.links.iter_mut().filter(|l| l.0 == who && l.2 == Link::Live) {
            link.2 = Link::Void;
        }
    }

    /// Returns whether a mail (with a new link) goes out.
    fn request(&mut self, who: usize, choices: &Choices) -> bool {
        let person = self.people.entry(who).or_insert_with(|| Person {
            status: SubscriberStatus::Pending,
            choices: choices.clone(),
            has_manage_link: false,
            mailed: false,
        });
        let wants_mail = matches!(
            person.status,
            SubscriberStatus::Pending | SubscriberStatus::Unsubscribed
        );
        if !wants_mail || (self.resend_pause && person.mailed) {
            return false;
        }
        person.mailed = true;
        self.void_links(who);
        self.links.push((who, choices.clone(), Link::Live));
        true
    }

    fn erase(&mut self, who: usize) {
        if self.people.remove(&who).is_some() {
            self.erased.insert(who);
            for link in self.links.iter_mut().filter(|l| l.0 == who) {
                link.2 = Link::Gone;
            }
        }
    }

    fn click(&mut self, n: usize) -> Expect {
        let (who, choices, state) = self.links[n].clone();
        match state {
            Link::Used => Expect::Used,
            Link::Void => Expect::Superseded,
            Link::Gone => Expect::Unknown,
            Link::Live => {
                self.links[n].2 = Link::Used;
                let person = self.people.get_mut(&who).unwrap();
                if matches!(
                    person.status,
                    SubscriberStatus::Pending | SubscriberStatus::Unsubscribed
                ) {
                    person.status = SubscriberStatus::Confirmed;
                    person.choices = Choices {
                        name: choices.name.or(person.choices.name.clone()),
                        ..choices
                    };
                }
                if person.status == SubscriberStatus::Confirmed {
                    person.has_manage_link = true;
                    self.erased.remove(&who);
                }
                Expect::Confirmed(who)
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Expect {
    Confirmed(usize),
    Used,
    Superseded,
    Unknown,
}

/// One Herald (no server, no workers: the test drives every step) shared by all cases;
/// each case uses addresses of its own.
struct World {
    app: Arc<App>,
    _dir: tempfile::TempDir,
}

async fn world(resend_minutes: u32) -> World {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("posts")).unwrap();
    let db_url = crate::common::fresh_database_url(dir.path()).await;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nbase_url = \"http://herald.test/\"\n[database]\nurl = \"{db_url}\"\n\
             [subscribers]\nconfirm_resend_minutes = {resend_minutes}\n"
        ),
    )
    .unwrap();
    let app = App::start(Settings::load(&config).unwrap()).await.unwrap();
    World { app, _dir: dir }
}

static CASE: AtomicUsize = AtomicUsize::new(0);

/// Takes every message waiting in the outbox: (recipient, confirmation token).
async fn take_mail(app: &App) -> Vec<(String, String)> {
    let now = Utc::now();
    let claimed = herald::store::outbox::claim_due(&app.db, now, now + chrono::Duration::minutes(5), 1000)
        .await
        .unwrap();
    let mut out = Vec::new();
    for mail in claimed {
        let message = MessageParser::default().parse(&mail.message).unwrap();
        let text = message.body_text(0).unwrap();
        let start = text.find("/confirm/").expect("a confirmation link") + "/confirm/".len();
        let token = text[start..].split_whitespace().next().unwrap().to_owned();
        herald::store::outbox::mark_sent(&app.db, mail.id, now).await.unwrap();
        out.push((mail.recipient, token));
    }
    out
}

async fn run_case(app: &App, resend_pause: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let address = |who: usize| format!("p{who}-case{case}@example.org");
    let find = |who: usize| {
        let email = EmailAddress::parse(&address(who)).unwrap();
        async move {
            herald::store::subscribers::find_by_email(&app.db, &email)
                .await
                .unwrap()
        }
    };
    let mut model = Model {
        resend_pause,
        ..Model::default()
    };
    // Tokens in the order they were mailed, parallel to `model.links`.
    let mut tokens: Vec<String> = Vec::new();
    let smtp = herald::domain::Actor::new(herald::domain::EventSource::Smtp, None);
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Request { who, choices } => {
                let request = SubscribeRequest {
                    email: EmailAddress::parse(&address(*who)).unwrap(),
                    name: choices.name.clone(),
                    frequency: choices.frequency,
                    topics: choices.topics.clone(),
                    source: SubscriberSource::Form,
                };
                app.subscriptions.request(request, None).await.unwrap();
                while app.subscriptions.process_requests().await.unwrap() > 0 {}
                let mailed = take_mail(app).await;
                let expected = model.request(*who, choices);
                prop_assert_eq!(
                    mailed.len(),
                    usize::from(expected),
                    "step {}: {:?}: mail sent",
                    step,
                    op
                );
                for (to, token) in mailed {
                    prop_assert_eq!(to, address(*who));
                    tokens.push(token);
                }
            }
            Op::Click { n } => {
                if tokens.is_empty() {
                    continue;
                }
                let n = n % tokens.len();
                let outcome = app.subscriptions.confirm(&tokens[n], None).await.unwrap();
                let got = match outcome {
                    Confirmed::Confirmed(s) => {
                        let who = (0..ADDRESSES).find(|w| address(*w) == s.email.as_str()).unwrap();
                        Expect::Confirmed(who)
                    }
                    Confirmed::Used => Expect::Used,
                    Confirmed::Superseded => Expect::Superseded,
                    Confirmed::Unknown => Expect::Unknown,
                    other => return Err(TestCaseError::fail(format!("step {step}: link {n}: {other:?}"))),
                };
                prop_assert_eq!(got, model.click(n), "step {}: link {} of {:?}", step, n, model.links);
            }
            Op::Forged => {
                let forged = herald::store::subscribers::new_token();
                let outcome = app.subscriptions.confirm(&forged, None).await.unwrap();
                prop_assert_eq!(outcome, Confirmed::Unknown);
            }
            Op::Unsubscribe { who } => {
                let Some(person) = model.people.get_mut(who).filter(|p| p.has_manage_link) else {
                    continue;
                };
                let subscriber = find(*who).await.unwrap();
                app.subscriptions.unsubscribe(&subscriber).await.unwrap();
                if matches!(person.status, SubscriberStatus::Pending | SubscriberStatus::Confirmed) {
                    person.status = SubscriberStatus::Unsubscribed;
                }
                // Leaving (even again) says no to any request still waiting for a click.
                model.void_links(*who);
            }
            Op::Preferences { who, frequency, topics } => {
                let Some(person) = model.people.get_mut(who).filter(|p| p.has_manage_link) else {
                    continue;
                };
                let subscriber = find(*who).await.unwrap();
                // What the preferences form does.
                let patch = SubscriberPatch {
                    frequency: Some(*frequency),
                    topics: Some(topics.clone()),
                    ..Default::default()
                };
                app.subscriptions
                    .update_preferences(subscriber.id, &patch, &herald::domain::Actor::link())
                    .await
                    .unwrap();
                person.choices.frequency = *frequency;
                person.choices.topics = topics.clone();
            }
            Op::Bounce { who } => {
                let Some(person) = model.people.get_mut(who) else {
                    continue;
                };
                let subscriber = find(*who).await.unwrap();
                // What the outbox does when a mail to the address fails for good.
                herald::store::subscribers::apply(
                    &app.db,
                    subscriber.id,
                    SubscriberEvent::Bounced,
                    &smtp,
                    None,
                    Utc::now(),
                )
                .await
                .unwrap();
                if person.status != SubscriberStatus::Bounced {
                    person.status = SubscriberStatus::Bounced;
                    model.void_links(*who);
                }
            }
            Op::Erase { who } => {
                if let Some(subscriber) = find(*who).await {
                    let erased = app.subscriptions.erase(subscriber.id, &Actor::cli()).await.unwrap();
                    prop_assert!(erased);
                }
                model.erase(*who);
            }
        }
        for who in 0..ADDRESSES {
            let email = EmailAddress::parse(&address(who)).unwrap();
            let suppressed = app.subscriptions.erased_at(&email).await.unwrap().is_some();
            prop_assert_eq!(
                suppressed,
                model.erased.contains(&who),
                "step {}: {:?}: suppression of {}",
                step,
                op,
                who
            );
            let stored = find(who).await;
            match (model.people.get(&who), stored) {
                (None, None) => {}
                (Some(person), Some(s)) => {
                    prop_assert_eq!(s.status, person.status, "step {}: {:?}: status of {}", step, op, who);
                    let stored_choices = Choices {
                        name: s.name.clone(),
                        frequency: s.frequency,
                        topics: s.topics.clone(),
                    };
                    prop_assert_eq!(
                        &stored_choices,
                        &person.choices,
                        "step {}: {:?}: choices of {}",
                        step,
                        op,
                        who
                    );
                    prop_assert_eq!(
                        s.confirmed_at.is_some(),
                        person.has_manage_link,
                        "step {}: confirmed only by a link: {}",
                        step,
                        who
                    );
                }
                (expected, got) => {
                    return Err(TestCaseError::fail(format!(
                        "step {step}: {op:?}: address {who}: model {expected:?}, store {got:?}"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn check(resend_minutes: u32, cases: u32) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let world = runtime.block_on(world(resend_minutes));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..24), |ops| {
        runtime.block_on(run_case(&world.app, resend_minutes > 0, &ops))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn only_the_newest_unused_link_confirms_and_only_the_owner_changes_their_choices() {
    check(0, 128);
}

#[test]
fn within_the_resend_pause_requests_change_nothing_and_the_first_link_still_works() {
    check(60, 64);
}
