//! Bounces and complaints over real HTTP: each provider's documented example payloads,
//! signed with test keys where the provider signs (an SNS certificate served from loopback),
//! change the subscriber as the policy says and are kept once; a call that fails
//! authentication gets 401 and changes nothing; an unconfigured provider answers 404. Soft
//! bounces are counted within their window, and an admin reactivates with a reason that the
//! console and the API show.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use chrono::{Duration, Utc};
use herald::bounces::{BounceReport, Recorded};
use herald::domain::{BounceEvent, BounceKind, BounceSource, Frequency, Subscriber, SubscriberStatus};
use serde_json::{Value, json};

use crate::common::{TestApp, add_subscriber, spawn_app, spawn_app_with};
use crate::console::Console;

const TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:MyTopic";

async fn confirmed(app: &TestApp, email: &str) -> Subscriber {
    add_subscriber(app, email, SubscriberStatus::Confirmed, Frequency::Weekly, &[]).await
}

async fn status(app: &TestApp, id: i64) -> SubscriberStatus {
    herald::store::subscribers::find(&app.app.db, id)
        .await
        .unwrap()
        .expect("the subscriber is still there")
        .status
}

async fn events(app: &TestApp, id: i64) -> Vec<BounceEvent> {
    app.app.bounces.events(id, 100).await.unwrap()
}

/// Every event kept, whoever it is about.
async fn event_count(app: &TestApp) -> i64 {
    match &app.app.db {
        herald::store::Db::Sqlite(pool) => sqlx::query_scalar("select count(*) from bounce_events")
            .fetch_one(pool)
            .await
            .unwrap(),
        herald::store::Db::Postgres(pool) => sqlx::query_scalar("select count(*) from bounce_events")
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

/// An edition row to point Message-IDs at.
async fn edition(app: &TestApp) -> i64 {
    let sql = "insert into editions (frequency, period, subject, status, created_at) \
               values ('weekly', '2026-W48', 'News', 'sent', $1) returning id";
    match &app.app.db {
        herald::store::Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(Utc::now()).fetch_one(pool).await.unwrap(),
        herald::store::Db::Postgres(pool) => sqlx::query_scalar(sql).bind(Utc::now()).fetch_one(pool).await.unwrap(),
    }
}

async fn post_json(app: &TestApp, path: &str, body: &str, headers: &[(&str, String)]) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

async fn handled(response: reqwest::Response) -> (usize, usize, usize) {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let n = |k: &str| body[k].as_u64().unwrap() as usize;
    (n("recorded"), n("duplicates"), n("ignored"))
}

// ---- Amazon SES through SNS ----

/// A loopback stand-in for SNS: serves the test certificate and counts subscription
/// confirmations.
struct FakeSns {
    base: String,
    confirmations: Arc<AtomicUsize>,
}

async fn fake_sns(certificate_pem: String) -> FakeSns {
    use axum::routing::get;
    let confirmations = Arc::new(AtomicUsize::new(0));
    let counter = confirmations.clone();
    let router = axum::Router::new()
        .route("/sns/cert.pem", get(move || async move { certificate_pem }))
        .route(
            "/sns/confirm",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "<ConfirmSubscriptionResponse/>"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/sns/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    FakeSns { base, confirmations }
}

/// A self-signed certificate for `key`, as SNS publishes its signing certificates.
fn certificate(key: &rsa::RsaPrivateKey) -> String {
    use std::str::FromStr;

    use rsa::pkcs8::EncodePublicKey;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::EncodePem;
    use x509_cert::der::pem::LineEnding;

    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let spki_der = key.to_public_key().to_public_key_der().unwrap();
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::try_from(spki_der.as_bytes()).unwrap();
    let builder = CertificateBuilder::new(
        Profile::Root,
        x509_cert::serial_number::SerialNumber::from(1u32),
        x509_cert::time::Validity::from_now(std::time::Duration::from_secs(3600)).unwrap(),
        x509_cert::name::Name::from_str("CN=sns.test.invalid").unwrap(),
        spki,
        &signer,
    )
    .unwrap();
    builder
        .build::<rsa::pkcs1v15::Signature>()
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap()
}

/// An SNS message of `kind` carrying `message`, signed (version 1: SHA1withRSA, 2:
/// SHA256withRSA) over the canonical string AWS documents.
fn sns(key: &rsa::RsaPrivateKey, version: u8, kind: &str, message: &str, cert_url: &str, extra: Value) -> String {
    use rsa::signature::{SignatureEncoding, Signer};

    let mut fields = json!({
        "Type": kind,
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": "2016-01-27T14:59:38.237Z",
        "SignatureVersion": version.to_string(),
        "SigningCertURL": cert_url,
    });
    for (k, v) in extra.as_object().unwrap() {
        fields[k] = v.clone();
    }
    let names: &[&str] = if kind == "Notification" {
        &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut canonical = String::new();
    for name in names {
        if let Some(value) = fields.get(*name).and_then(Value::as_str) {
            canonical.push_str(&format!("{name}\n{value}\n"));
        }
    }
    let signature = match version {
        1 => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key.clone())
            .sign(canonical.as_bytes())
            .to_vec(),
        _ => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone())
            .sign(canonical.as_bytes())
            .to_vec(),
    };
    fields["Signature"] = Value::String(base64::engine::general_purpose::STANDARD.encode(signature));
    fields.to_string()
}

/// SES's documented bounce notification (Amazon SES Developer Guide, "Amazon SNS
/// notification examples"), with Herald's own Message-ID in its headers.
fn ses_bounce(message_id: &str, bounce_type: &str, feedback_id: &str) -> String {
    json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "reportingMTA": "dns; email.example.com",
            "bouncedRecipients": [{
                "emailAddress": "jane@example.com",
                "status": "5.1.1",
                "action": "failed",
                "diagnosticCode": "smtp; 550 5.1.1 <jane@example.com>... User"
            }],
            "bounceSubType": "General",
            "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": feedback_id,
            "remoteMtaIp": "127.0.2.0"
        },
        "mail": {
            "timestamp": "2016-01-27T14:59:38.237Z",
            "source": "john@example.com",
            "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/example.com",
            "sourceIp": "127.0.3.0",
            "sendingAccountId": "123456789012",
            "callerIdentity": "IAM_user_or_role_name",
            "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            "destination": ["jane@example.com", "mary@example.com", "richard@example.com"],
            "headersTruncated": false,
            "headers": [
                {"name": "From", "value": "\"John Doe\" <john@example.com>"},
                {"name": "To", "value": "\"Jane Doe\" <jane@example.com>"},
                {"name": "Message-ID", "value": message_id},
                {"name": "Subject", "value": "Hello"}
            ],
            "commonHeaders": {
                "from": ["\"John Doe\" <john@example.com>"],
                "date": "Wed, 27 Jan 2016 14:05:45 +0000",
                "to": ["\"Jane Doe\" <jane@example.com>"],
                "messageId": message_id,
                "subject": "Hello"
            }
        }
    })
    .to_string()
}

/// SES's documented complaint notification.
fn ses_complaint() -> String {
    json!({
        "notificationType": "Complaint",
        "complaint": {
            "userAgent": "AnyCompany Feedback Loop (V0.01)",
            "complainedRecipients": [{"emailAddress": "richard@example.com"}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2016-01-27T14:59:38.237Z",
            "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"
        },
        "mail": {
            "timestamp": "2016-01-27T14:59:38.237Z",
            "messageId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
            "source": "john@example.com",
            "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/example.com",
            "sourceIp": "127.0.3.0",
            "sendingAccountId": "123456789012",
            "destination": ["richard@example.com"],
            "headersTruncated": false,
            "commonHeaders": {"from": ["\"John Doe\" <john@example.com>"], "messageId": "custom-message-ID", "subject": "Hello"}
        }
    })
    .to_string()
}

#[tokio::test]
async fn ses_notifications_signed_by_sns_bounce_and_complain_once_and_forgeries_change_nothing() {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let fake = fake_sns(certificate(&key)).await;
    let app = spawn_app_with(&format!(
        "[bounces.ses]\ntopic_arn = \"{TOPIC}\"\ncertificate_url_prefix = \"{}\"\n",
        fake.base
    ))
    .await;
    let cert_url = format!("{}cert.pem", fake.base);
    let jane = confirmed(&app, "jane@example.com").await;
    let richard = confirmed(&app, "richard@example.com").await;
    let edition_id = edition(&app).await;
    let message_id = format!("<edition.{edition_id}.{}@localhost>", jane.id);

    // The subscription handshake: verified, then confirmed by fetching SubscribeURL.
    let handshake = sns(
        &key,
        1,
        "SubscriptionConfirmation",
        "You have chosen to subscribe to the topic. To confirm the subscription, visit the SubscribeURL included in this message.",
        &cert_url,
        json!({"Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
               "SubscribeURL": format!("{}confirm?Action=ConfirmSubscription&Token=2336", fake.base)}),
    );
    assert_eq!(
        handled(post_json(&app, "/webhooks/ses", &handshake, &[]).await).await,
        (0, 0, 0)
    );
    assert_eq!(fake.confirmations.load(Ordering::SeqCst), 1, "SubscribeURL fetched");

    // A permanent bounce (signature version 1) of Herald's own message.
    let bounce = sns(
        &key,
        1,
        "Notification",
        &ses_bounce(&message_id, "Permanent", "feedback-1"),
        &cert_url,
        json!({}),
    );
    assert_eq!(
        handled(post_json(&app, "/webhooks/ses", &bounce, &[]).await).await,
        (1, 0, 0)
    );
    assert_eq!(status(&app, jane.id).await, SubscriberStatus::Bounced);
    let kept = events(&app, jane.id).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (
            kept[0].kind,
            kept[0].source,
            kept[0].edition_id,
            kept[0].address.as_str()
        ),
        (
            BounceKind::Hard,
            BounceSource::Ses,
            Some(edition_id),
            "jane@example.com"
        )
    );
    assert_eq!(
        kept[0].diagnostic.as_deref(),
        Some("smtp; 550 5.1.1 <jane@example.com>... User")
    );
    assert_eq!(kept[0].occurred_at.to_rfc3339(), "2016-01-27T14:59:38.237+00:00");

    // SNS delivers at least once: the same notification again is kept once.
    assert_eq!(
        handled(post_json(&app, "/webhooks/ses", &bounce, &[]).await).await,
        (0, 1, 0)
    );
    assert_eq!(events(&app, jane.id).await.len(), 1);

    // A complaint, signature version 2.
    let complaint = sns(
        &key,
        2,
        "Notification",
        &ses_complaint(),
        &cert_url,
        json!({"Subject": "Amazon SES Email Event Notification"}),
    );
    assert_eq!(
        handled(post_json(&app, "/webhooks/ses", &complaint, &[]).await).await,
        (1, 0, 0)
    );
    assert_eq!(status(&app, richard.id).await, SubscriberStatus::Complained);
    assert_eq!(events(&app, richard.id).await[0].kind, BounceKind::Complaint);

    // Forgeries: each is refused and changes nothing.
    let mary = confirmed(&app, "mary@example.com").await;
    let for_mary = ses_bounce("<x@y>", "Permanent", "feedback-forged").replace("jane@example.com", "mary@example.com");
    let other_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let mut tampered: Value =
        serde_json::from_str(&sns(&key, 1, "Notification", &for_mary, &cert_url, json!({}))).unwrap();
    tampered["Message"] = Value::String(for_mary.replace("Permanent", "Permanent "));
    let wrong_topic = sns(
        &key,
        1,
        "Notification",
        &for_mary,
        &cert_url,
        json!({"TopicArn": "arn:aws:sns:us-west-2:123456789012:Other"}),
    );
    let foreign_certificate = sns(
        &key,
        1,
        "Notification",
        &for_mary,
        "https://evil.example/cert.pem",
        json!({}),
    );
    let forgeries = [
        (
            "signed by another key",
            sns(&other_key, 1, "Notification", &for_mary, &cert_url, json!({})),
        ),
        ("changed after signing", tampered.to_string()),
        ("another topic", wrong_topic),
        ("a certificate from elsewhere", foreign_certificate),
        (
            "not SNS at all",
            ses_bounce("<x@y>", "Permanent", "f").replace("jane@", "mary@"),
        ),
    ];
    let before = event_count(&app).await;
    for (what, body) in forgeries {
        let response = post_json(&app, "/webhooks/ses", &body, &[]).await;
        assert_eq!(response.status(), 401, "{what}");
    }
    assert_eq!(status(&app, mary.id).await, SubscriberStatus::Confirmed);
    assert_eq!(event_count(&app).await, before);
    assert_eq!(fake.confirmations.load(Ordering::SeqCst), 1);
}

// ---- Postmark ----

/// Postmark's documented Bounce webhook.
fn postmark_bounce(id: u64, kind: &str, email: &str) -> String {
    json!({
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": id,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "Test",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"a_key": "a_value", "b_key": "b_value"},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "Test bounce details",
        "Email": email,
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": true,
        "Inactive": true,
        "CanActivate": true,
        "Subject": "Test subject",
        "Content": "<Full dump of bounce>"
    })
    .to_string()
}

/// Postmark's documented SpamComplaint webhook.
fn postmark_complaint(email: &str) -> String {
    json!({
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 100001,
        "Name": "Spam complaint",
        "Tag": "Test",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "Metadata": {"a_key": "a_value", "b_key": "b_value"},
        "ServerID": 1234,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": email,
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": true,
        "Inactive": true,
        "CanActivate": false,
        "Subject": "Test subject",
        "Content": "<Abuse report dump>"
    })
    .to_string()
}

fn basic(user: &str, password: &str) -> (&'static str, String) {
    (
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ),
    )
}

#[tokio::test]
async fn postmark_bounces_and_complaints_with_the_right_credentials_suppress_once() {
    let app = spawn_app_with("[bounces.postmark]\nusername = \"postmark\"\npassword = \"hook-secret\"\n").await;
    let john = confirmed(&app, "john@example.com").await;
    let ann = confirmed(&app, "ann@example.com").await;
    let soft = confirmed(&app, "soft@example.com").await;
    let auth = [basic("postmark", "hook-secret")];

    // Wrong or missing credentials: 401, nothing changes.
    for headers in [
        vec![basic("postmark", "wrong")],
        vec![basic("other", "hook-secret")],
        vec![],
    ] {
        let response = post_json(
            &app,
            "/webhooks/postmark",
            &postmark_bounce(42, "HardBounce", "john@example.com"),
            &headers,
        )
        .await;
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers().get("www-authenticate"), None);
    }
    assert_eq!(status(&app, john.id).await, SubscriberStatus::Confirmed);
    assert_eq!(event_count(&app).await, 0);

    let bounce = postmark_bounce(42, "HardBounce", "John@Example.com");
    assert_eq!(
        handled(post_json(&app, "/webhooks/postmark", &bounce, &auth).await).await,
        (1, 0, 0)
    );
    assert_eq!(
        handled(post_json(&app, "/webhooks/postmark", &bounce, &auth).await).await,
        (0, 1, 0)
    );
    assert_eq!(status(&app, john.id).await, SubscriberStatus::Bounced);
    let kept = events(&app, john.id).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].kind, kept[0].source),
        (BounceKind::Hard, BounceSource::Postmark)
    );
    assert_eq!(kept[0].address, "john@example.com", "lowercased");

    // The complaint record shares no id with the bounce record, though both say 42.
    assert_eq!(
        handled(
            post_json(
                &app,
                "/webhooks/postmark",
                &postmark_complaint("ann@example.com"),
                &auth
            )
            .await
        )
        .await,
        (1, 0, 0)
    );
    assert_eq!(status(&app, ann.id).await, SubscriberStatus::Complained);

    // A soft bounce is counted, not acted on; types Herald does not act on are ignored.
    let soft_bounce = postmark_bounce(43, "SoftBounce", "soft@example.com");
    assert_eq!(
        handled(post_json(&app, "/webhooks/postmark", &soft_bounce, &auth).await).await,
        (1, 0, 0)
    );
    assert_eq!(status(&app, soft.id).await, SubscriberStatus::Confirmed);
    assert_eq!(events(&app, soft.id).await[0].kind, BounceKind::Soft);
    let auto_reply = postmark_bounce(44, "AutoResponder", "soft@example.com");
    assert_eq!(
        handled(post_json(&app, "/webhooks/postmark", &auto_reply, &auth).await).await,
        (0, 0, 1)
    );
}

// ---- Mailgun ----

const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";

/// Wraps Mailgun's documented `event-data` with a fresh signature (`timestamp`, `token`).
fn mailgun(event_data: Value, timestamp: i64, token: &str, key: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    json!({
        "signature": {
            "timestamp": timestamp.to_string(),
            "token": token,
            "signature": hex::encode(mac.finalize().into_bytes())
        },
        "event-data": event_data
    })
    .to_string()
}

/// Mailgun's documented `failed` event, permanent or temporary.
fn mailgun_failed(id: &str, severity: &str, recipient: &str) -> Value {
    json!({
        "event": "failed",
        "id": id,
        "timestamp": 1521233195.375624,
        "log-level": "error",
        "severity": severity,
        "reason": if severity == "permanent" { "suppress-bounce" } else { "generic" },
        "envelope": {"sender": "bob@sandbox.mailgun.org", "transport": "smtp", "targets": recipient},
        "flags": {"is-routed": false, "is-authenticated": true, "is-system-test": false, "is-test-mode": false},
        "recipient": recipient,
        "recipient-domain": "example.com",
        "message": {
            "headers": {
                "to": format!("Alice <{recipient}>"),
                "message-id": "20130503192659.13651.20287@sandbox.mailgun.org",
                "from": "Bob <bob@sandbox.mailgun.org>",
                "subject": "Test permanent_fail webhook"
            },
            "attachments": [],
            "size": 111
        },
        "delivery-status": {
            "attempt-no": 1,
            "message": "",
            "code": if severity == "permanent" { 605 } else { 452 },
            "description": if severity == "permanent" { "Not delivering to previously bounced address" } else { "4.2.2 mailbox full" },
            "session-seconds": 0.0
        },
        "user-variables": {"my_var_1": "Mailgun Variable #1", "my-var-2": "awesome"}
    })
}

/// Mailgun's documented `complained` event.
fn mailgun_complained(recipient: &str) -> Value {
    json!({
        "event": "complained",
        "id": "-Agny091SquKnsrW2NEKUA",
        "timestamp": 1521233123.501324,
        "log-level": "warn",
        "envelope": {"sending-ip": "173.193.210.33"},
        "flags": {"is-test-mode": false},
        "message": {
            "headers": {
                "to": format!("Alice <{recipient}>"),
                "message-id": "20110215055645.25246.63817@sandbox.mailgun.org",
                "from": "Bob <bob@sandbox.mailgun.org>",
                "subject": "Test complained webhook"
            },
            "attachments": [],
            "size": 111
        },
        "recipient": recipient,
        "campaigns": [],
        "user-variables": {"my_var_1": "Mailgun Variable #1", "my-var-2": "awesome"}
    })
}

#[tokio::test]
async fn mailgun_events_with_a_fresh_signature_are_kept_and_replays_are_refused() {
    let app = spawn_app_with(&format!("[bounces.mailgun]\nsigning_key = \"{MAILGUN_KEY}\"\n")).await;
    let alice = confirmed(&app, "alice@example.com").await;
    let carol = confirmed(&app, "carol@example.com").await;
    let dave = confirmed(&app, "dave@example.com").await;
    let now = Utc::now().timestamp();

    // Refused: another key, a stale timestamp, a signature over another token.
    let permanent = mailgun_failed("G9Bn5sl1TC6nu79C8C0bwg", "permanent", "alice@example.com");
    let mut swapped: Value = serde_json::from_str(&mailgun(permanent.clone(), now, "token-a", MAILGUN_KEY)).unwrap();
    swapped["signature"]["token"] = json!("token-b");
    for (what, body) in [
        ("another key", mailgun(permanent.clone(), now, "token-1", "key-other")),
        (
            "a stale timestamp",
            mailgun(permanent.clone(), now - 3600, "token-2", MAILGUN_KEY),
        ),
        ("another token", swapped.to_string()),
        ("no signature", json!({"event-data": permanent}).to_string()),
    ] {
        assert_eq!(
            post_json(&app, "/webhooks/mailgun", &body, &[]).await.status(),
            401,
            "{what}"
        );
    }
    assert_eq!(status(&app, alice.id).await, SubscriberStatus::Confirmed);
    assert_eq!(event_count(&app).await, 0);

    let signed = mailgun(permanent.clone(), now, "token-3", MAILGUN_KEY);
    assert_eq!(
        handled(post_json(&app, "/webhooks/mailgun", &signed, &[]).await).await,
        (1, 0, 0)
    );
    assert_eq!(status(&app, alice.id).await, SubscriberStatus::Bounced);
    // The same call again: its token is spent.
    assert_eq!(post_json(&app, "/webhooks/mailgun", &signed, &[]).await.status(), 401);
    // Mailgun's own retry comes with a new token: the event is kept once.
    let retry = mailgun(permanent, now, "token-4", MAILGUN_KEY);
    assert_eq!(
        handled(post_json(&app, "/webhooks/mailgun", &retry, &[]).await).await,
        (0, 1, 0)
    );
    let kept = events(&app, alice.id).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].diagnostic.as_deref(),
        Some("605 Not delivering to previously bounced address (suppress-bounce)")
    );

    let temporary = mailgun(
        mailgun_failed("Temp1", "temporary", "carol@example.com"),
        now,
        "token-5",
        MAILGUN_KEY,
    );
    assert_eq!(
        handled(post_json(&app, "/webhooks/mailgun", &temporary, &[]).await).await,
        (1, 0, 0)
    );
    assert_eq!(
        status(&app, carol.id).await,
        SubscriberStatus::Confirmed,
        "one soft bounce"
    );
    assert_eq!(events(&app, carol.id).await[0].kind, BounceKind::Soft);

    let complained = mailgun(mailgun_complained("dave@example.com"), now, "token-6", MAILGUN_KEY);
    assert_eq!(
        handled(post_json(&app, "/webhooks/mailgun", &complained, &[]).await).await,
        (1, 0, 0)
    );
    assert_eq!(status(&app, dave.id).await, SubscriberStatus::Complained);
}

// ---- SendGrid ----

/// SendGrid's documented events (Event Webhook Reference), one per address.
fn sendgrid_batch() -> String {
    json!([
        {"email": "bounce@example.com", "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
         "event": "bounce", "category": "cat facts", "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
         "reason": "500 unknown recipient", "status": "5.0.0", "type": "bounce"},
        {"email": "dropped@example.com", "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
         "event": "dropped", "category": "cat facts", "sg_event_id": "zmzJhfJgAfUSOW80yEbPyw==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
         "reason": "Bounced Address", "status": "5.0.0"},
        {"email": "spam@example.com", "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
         "event": "spamreport", "category": "cat facts", "sg_event_id": "37nvH5QBz858KGVYCM4uOA==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"},
        {"email": "deferred@example.com", "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
         "event": "deferred", "category": "cat facts", "sg_event_id": "t7LEShmowp86DTf3Ra0lZA==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
         "response": "400 try again later", "attempt": "5"},
        {"email": "deferred@example.com", "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
         "event": "delivered", "category": "cat facts", "sg_event_id": "rWVYmVk90MjZJ9iohOBa3w==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "response": "250 OK"}
    ])
    .to_string()
}

fn sendgrid_headers(key: &p256::ecdsa::SigningKey, timestamp: &str, body: &str) -> Vec<(&'static str, String)> {
    use p256::ecdsa::signature::Signer;
    let signature: p256::ecdsa::Signature = key.sign(format!("{timestamp}{body}").as_bytes());
    vec![
        (
            "x-twilio-email-event-webhook-signature",
            base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes()),
        ),
        ("x-twilio-email-event-webhook-timestamp", timestamp.to_owned()),
    ]
}

#[tokio::test]
async fn sendgrid_signed_batches_apply_each_event_once_and_unsigned_ones_nothing() {
    use p256::pkcs8::EncodePublicKey;
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let public = key.verifying_key().to_public_key_der().unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());
    let app = spawn_app_with(&format!("[bounces.sendgrid]\npublic_key = \"{public}\"\n")).await;
    let mut people = Vec::new();
    for who in ["bounce", "dropped", "spam", "deferred"] {
        people.push(confirmed(&app, &format!("{who}@example.com")).await);
    }
    let body = sendgrid_batch();
    let timestamp = Utc::now().timestamp().to_string();

    let other = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let mut wrong_timestamp = sendgrid_headers(&key, &timestamp, &body);
    wrong_timestamp[1].1 = "1".into();
    for (what, headers) in [
        ("another key", sendgrid_headers(&other, &timestamp, &body)),
        (
            "another body",
            sendgrid_headers(&key, &timestamp, &body.replace("spam@", "spam2@")),
        ),
        ("another timestamp", wrong_timestamp),
        ("no signature", Vec::new()),
    ] {
        assert_eq!(
            post_json(&app, "/webhooks/sendgrid", &body, &headers).await.status(),
            401,
            "{what}"
        );
    }
    assert_eq!(event_count(&app).await, 0);

    let headers = sendgrid_headers(&key, &timestamp, &body);
    assert_eq!(
        handled(post_json(&app, "/webhooks/sendgrid", &body, &headers).await).await,
        (4, 0, 1)
    );
    let expected = [
        (SubscriberStatus::Bounced, BounceKind::Hard),
        (SubscriberStatus::Bounced, BounceKind::Hard),
        (SubscriberStatus::Complained, BounceKind::Complaint),
        (SubscriberStatus::Confirmed, BounceKind::Soft),
    ];
    for (person, (want_status, want_kind)) in people.iter().zip(expected) {
        assert_eq!(status(&app, person.id).await, want_status, "{}", person.email);
        let kept = events(&app, person.id).await;
        assert_eq!(kept.len(), 1, "{}", person.email);
        assert_eq!((kept[0].kind, kept[0].source), (want_kind, BounceSource::Sendgrid));
    }
    // SendGrid retries a batch it got no 2xx for: every event in it is kept once.
    let later = (Utc::now().timestamp() + 1).to_string();
    let headers = sendgrid_headers(&key, &later, &body);
    assert_eq!(
        handled(post_json(&app, "/webhooks/sendgrid", &body, &headers).await).await,
        (0, 4, 1)
    );
    assert_eq!(event_count(&app).await, 4);
}

// ---- every provider ----

#[tokio::test]
async fn unconfigured_providers_answer_404_and_large_bodies_are_refused() {
    let app = spawn_app().await;
    for provider in ["ses", "postmark", "mailgun", "sendgrid"] {
        let response = post_json(&app, &format!("/webhooks/{provider}"), "{}", &[]).await;
        assert_eq!(response.status(), 404, "{provider}");
    }
    let app = spawn_app_with("[bounces.postmark]\nusername = \"u\"\npassword = \"p\"\n").await;
    let huge = format!("{{\"Content\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let response = post_json(&app, "/webhooks/postmark", &huge, &[basic("u", "p")]).await;
    assert_eq!(response.status(), 413);
}

// ---- the policy ----

fn soft(address: &str, at: chrono::DateTime<Utc>, id: &str) -> BounceReport {
    BounceReport {
        address: address.to_owned(),
        kind: BounceKind::Soft,
        diagnostic: Some("452 4.2.2 mailbox full".into()),
        source: BounceSource::Ingest,
        message_id: None,
        external_id: Some(id.to_owned()),
        occurred_at: at,
    }
}

#[tokio::test]
async fn soft_bounces_suppress_only_when_enough_fall_within_the_window() {
    let app = spawn_app_with("[bounces]\nsoft_limit = 3\nsoft_days = 14\n").await;
    let sam = confirmed(&app, "sam@example.com").await;
    let bounces = &app.app.bounces;
    let start = Utc::now() - Duration::days(60);

    // Two within a fortnight, then a third three weeks later: never three in one window.
    for (n, day) in [0, 10, 31].into_iter().enumerate() {
        bounces
            .record(soft("sam@example.com", start + Duration::days(day), &format!("s{n}")))
            .await
            .unwrap();
        assert_eq!(
            status(&app, sam.id).await,
            SubscriberStatus::Confirmed,
            "after day {day}"
        );
    }
    // The same report again is not a fourth.
    assert_eq!(
        bounces
            .record(soft("sam@example.com", start + Duration::days(31), "s2"))
            .await
            .unwrap(),
        Recorded::Duplicate
    );
    bounces
        .record(soft("sam@example.com", start + Duration::days(38), "s3"))
        .await
        .unwrap();
    assert_eq!(
        status(&app, sam.id).await,
        SubscriberStatus::Confirmed,
        "two in the window"
    );
    let third = bounces
        .record(soft("SAM@example.com", start + Duration::days(44), "s4"))
        .await
        .unwrap();
    assert!(
        matches!(
            third,
            Recorded::Kept {
                status: Some(SubscriberStatus::Bounced),
                changed: true,
                ..
            }
        ),
        "{third:?}"
    );
    assert_eq!(status(&app, sam.id).await, SubscriberStatus::Bounced);

    // Reactivated, the address counts afresh: older soft bounces no longer count.
    bounces
        .reactivate(sam.id, "Mailbox cleaned up", BounceSource::Api, None)
        .await
        .unwrap();
    assert_eq!(status(&app, sam.id).await, SubscriberStatus::Confirmed);
    bounces
        .record(soft("sam@example.com", start + Duration::days(45), "s5"))
        .await
        .unwrap();
    assert_eq!(status(&app, sam.id).await, SubscriberStatus::Confirmed);
    assert_eq!(events(&app, sam.id).await.len(), 7);

    // A report about an address Herald does not know is kept, unmatched.
    let stranger = bounces
        .record(soft("nobody@example.com", Utc::now(), "s6"))
        .await
        .unwrap();
    assert!(matches!(
        stranger,
        Recorded::Kept {
            subscriber_id: None,
            status: None,
            ..
        }
    ));
}

#[tokio::test]
async fn an_admin_reactivates_with_a_reason_that_the_console_and_the_api_show() {
    let app = spawn_app().await;
    let rita = confirmed(&app, "rita@example.com").await;
    app.app
        .bounces
        .record(BounceReport {
            address: "rita@example.com".into(),
            kind: BounceKind::Hard,
            diagnostic: Some("550 5.1.1 <rita@example.com>: Recipient address rejected".into()),
            source: BounceSource::Imap,
            message_id: None,
            external_id: None,
            occurred_at: Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(status(&app, rita.id).await, SubscriberStatus::Bounced);

    let console = Console::new(&app).await;
    let path = format!("/admin/subscribers/{}", rita.id);
    let page = console.page(&path).await;
    assert!(page.contains("Recipient address rejected"), "the bounce is shown");
    assert!(
        page.contains("id=\"reactivate\""),
        "a suppressed address can be reactivated"
    );

    // Without a reason: nothing changes, and the page says why.
    let refused = console
        .follow(
            console
                .post(&format!("{path}/reactivate"), &[("reason", "  ".into())])
                .await,
        )
        .await;
    assert!(refused.contains("needs a reason"), "{refused}");
    assert_eq!(status(&app, rita.id).await, SubscriberStatus::Bounced);

    // From another site, riding on the session: refused.
    let cross_site = app
        .client
        .post(app.url(&format!("{path}/reactivate")))
        .header("cookie", console_cookie(&console))
        .header("origin", "https://evil.example")
        .form(&[("reason", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(status(&app, rita.id).await, SubscriberStatus::Bounced);

    let done = console
        .follow(
            console
                .post(
                    &format!("{path}/reactivate"),
                    &[("reason", "Her IT fixed the mailbox".into())],
                )
                .await,
        )
        .await;
    assert!(done.contains("is confirmed again"), "{done}");
    assert!(done.contains("Her IT fixed the mailbox"), "the reason is shown");
    assert!(!done.contains("id=\"reactivate\""));
    assert_eq!(status(&app, rita.id).await, SubscriberStatus::Confirmed);

    // The API lists the same events and reactivates too.
    let token = herald::auth::create_token(&app.app.db, "bounces").await.unwrap();
    let api = |method: reqwest::Method, path: String| {
        app.client
            .request(method, app.url(&format!("/admin/api{path}")))
            .header("authorization", format!("Bearer {token}"))
    };
    let listed: Value = api(reqwest::Method::GET, format!("/subscribers/{}/bounces", rita.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reactivated", "hard"]);
    assert_eq!(listed["events"][0]["diagnostic"], "Her IT fixed the mailbox");
    assert_eq!(listed["events"][0]["source"], "console");
    let not_suppressed = api(reqwest::Method::POST, format!("/subscribers/{}/reactivate", rita.id))
        .json(&json!({"reason": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_suppressed.status(), 409);

    let complaint = BounceReport {
        address: "rita@example.com".into(),
        kind: BounceKind::Complaint,
        diagnostic: Some("abuse".into()),
        source: BounceSource::Ingest,
        message_id: None,
        external_id: Some("arf-1".into()),
        occurred_at: Utc::now(),
    };
    app.app.bounces.record(complaint).await.unwrap();
    assert_eq!(status(&app, rita.id).await, SubscriberStatus::Complained);
    let no_reason = api(reqwest::Method::POST, format!("/subscribers/{}/reactivate", rita.id))
        .json(&json!({"reason": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_reason.status(), 422);
    let back: Value = api(reqwest::Method::POST, format!("/subscribers/{}/reactivate", rita.id))
        .json(&json!({"reason": "She says the complaint was a slip"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(back["status"], "confirmed");
    let kept = events(&app, rita.id).await;
    assert_eq!(
        (kept[0].kind, kept[0].source, kept[0].diagnostic.as_deref()),
        (
            BounceKind::Reactivated,
            BounceSource::Api,
            Some("She says the complaint was a slip")
        )
    );
}

fn console_cookie(console: &Console<'_>) -> String {
    console.session.clone()
}
