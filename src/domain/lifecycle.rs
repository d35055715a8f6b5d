//! The one state machine of a subscriber's status: every change of status, whoever asks
//! for it (the form, a confirmation link, an unsubscribe link, a bounce, an admin, an
//! import), is decided by [`SubscriberEvent::transition`]. The store carries out what it
//! decides, guarding its writes against a status that changed meanwhile.

use super::SubscriberStatus;

/// Something that happens to an address and may change its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriberEvent {
    /// Someone asked to join on the form (the owner or a stranger: the form cannot tell).
    Requested,
    /// The newest live confirmation link of the address was followed. Such a link exists
    /// only after a request (or an admin's adding the address as pending), and leaving the
    /// list voids it.
    Confirmed,
    /// The reader left: the unsubscribe page, or one-click `List-Unsubscribe`.
    Unsubscribed,
    /// Mail to the address failed permanently (a bad mailbox).
    Bounced,
    /// The reader reported mail as spam.
    Complained,
    /// An admin (console, API, command line) added the address or set its status. An
    /// admin's word is final on an address that is on the list: this is the one way,
    /// besides a forced import, to bring a suppressed address back.
    AdminSet { to: SubscriberStatus },
    /// A row of an imported list; `force` lets it bring departed addresses back.
    Imported { to: SubscriberStatus, force: bool },
}

/// What an event does to a status: the machine's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// The status becomes this one (never the one it was).
    To(SubscriberStatus),
    /// Accepted, and the status stays as it is (it is already where the event leads, or
    /// the event changes nothing until something else happens).
    Same,
    /// Not accepted from this status: nothing changes.
    Refused,
}

impl SubscriberStatus {
    /// Whether the address is on the list: asked to join (pending) or joined.
    pub fn on_list(self) -> bool {
        matches!(self, SubscriberStatus::Pending | SubscriberStatus::Confirmed)
    }

    /// Whether the address is suppressed: it bounced or complained, and nothing but an
    /// admin (or a forced import) mails it again, not even a confirmation link.
    pub fn suppressed(self) -> bool {
        matches!(self, SubscriberStatus::Bounced | SubscriberStatus::Complained)
    }

    /// How far off the list: 0 on it, 1 unsubscribed (a request may bring them back), 2
    /// bounced, 3 complained (the strongest suppression, never overwritten by a bounce).
    fn departure(self) -> u8 {
        match self {
            SubscriberStatus::Pending | SubscriberStatus::Confirmed => 0,
            SubscriberStatus::Unsubscribed => 1,
            SubscriberStatus::Bounced => 2,
            SubscriberStatus::Complained => 3,
        }
    }
}

impl SubscriberEvent {
    /// The status this event leads to, whenever it changes one.
    pub fn target(self) -> SubscriberStatus {
        match self {
            SubscriberEvent::Requested => SubscriberStatus::Pending,
            SubscriberEvent::Confirmed => SubscriberStatus::Confirmed,
            SubscriberEvent::Unsubscribed => SubscriberStatus::Unsubscribed,
            SubscriberEvent::Bounced => SubscriberStatus::Bounced,
            SubscriberEvent::Complained => SubscriberStatus::Complained,
            SubscriberEvent::AdminSet { to } | SubscriberEvent::Imported { to, .. } => to,
        }
    }

    /// What this event does to an address whose status is `from` (`None`: not on record).
    ///
    /// | from \ event | Requested | Confirmed   | Unsubscribed   | Bounced   | Complained   | AdminSet { to }  | Imported { to, force }                    |
    /// |--------------|-----------|-------------|----------------|-----------|--------------|------------------|-------------------------------------------|
    /// | (no record)  | → pending | refused     | refused        | refused   | refused      | → to if pending or confirmed, else refused | → to             |
    /// | pending      | same ¹    | → confirmed | → unsubscribed | → bounced | → complained | → to             | → to                                      |
    /// | confirmed    | refused   | same ²      | → unsubscribed | → bounced | → complained | → to             | → to; pending: same ³                     |
    /// | unsubscribed | same ¹    | → confirmed | same           | → bounced | → complained | → to             | bounced, complained: → to; else refused ⁴ |
    /// | bounced      | refused   | refused     | same           | same      | → complained | → to             | complained: → to; else refused ⁴          |
    /// | complained   | refused   | refused     | same           | same      | same         | → to             | refused ⁴                                 |
    ///
    /// An `AdminSet` or `Imported` whose `to` is the current status is `same`.
    ///
    /// 1. A request changes no status it finds: the address is mailed a confirmation link
    ///    carrying the choices asked for, and only following it changes anything (so a
    ///    stranger typing someone's address in the form changes nothing of theirs). A
    ///    departed reader stays unsubscribed until they follow the link.
    /// 2. A confirmed reader keeps their own choices: a link that arrives late changes nothing.
    /// 3. An import never turns a confirmed subscriber back into a pending one, forced or not.
    /// 4. Without `force` an import never brings an address closer to the list: it may record
    ///    a departure, or a stronger one (unsubscribed → bounced → complained), and nothing
    ///    else; with `force` it sets the status it carries.
    ///
    /// A permanent bounce suppresses the address whether it was pending, confirmed or
    /// unsubscribed, as Mailchimp "cleans" a hard-bounced address and listmonk's bounce
    /// action blocklists the subscriber whatever their subscriptions: the address is dead,
    /// and mailing it again, even a confirmation link an unsubscribed reader's address
    /// asked for, would hurt the sender's reputation. A complaint is the stronger record and
    /// is kept when the address later bounces or leaves.
    pub fn transition(self, from: Option<SubscriberStatus>) -> Transition {
        use SubscriberEvent as E;
        use SubscriberStatus as S;
        let Some(from) = from else {
            return match self {
                E::Requested => Transition::To(S::Pending),
                E::AdminSet { to } if to.on_list() => Transition::To(to),
                E::Imported { to, .. } => Transition::To(to),
                _ => Transition::Refused,
            };
        };
        let to = self.target();
        if from == to {
            return Transition::Same;
        }
        match self {
            // Pending is handled above: a request moves no one.
            E::Requested if from == S::Unsubscribed => Transition::Same,
            E::Requested => Transition::Refused,
            E::Confirmed if matches!(from, S::Pending | S::Unsubscribed) => Transition::To(to),
            E::Confirmed => Transition::Refused,
            // Already off the list, and more firmly.
            E::Unsubscribed if from.suppressed() => Transition::Same,
            E::Bounced if from == S::Complained => Transition::Same,
            E::Unsubscribed | E::Bounced | E::Complained | E::AdminSet { .. } => Transition::To(to),
            E::Imported { .. } if from == S::Confirmed && to == S::Pending => Transition::Same,
            E::Imported { force, .. }
                if force || to.departure() > from.departure() || (from == S::Pending && to == S::Confirmed) =>
            {
                Transition::To(to)
            }
            E::Imported { .. } => Transition::Refused,
        }
    }

    /// The statuses from which this event moves an address (to [`Self::target`]): what a
    /// store's conditional update may match on, so that the machine decides even when many
    /// rows change in one statement.
    pub fn moves_from(self) -> Vec<SubscriberStatus> {
        SubscriberStatus::ALL
            .iter()
            .copied()
            .filter(|from| matches!(self.transition(Some(*from)), Transition::To(_)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use SubscriberEvent as E;
    use SubscriberStatus as S;

    fn status() -> impl Strategy<Value = SubscriberStatus> {
        proptest::sample::select(S::ALL.to_vec())
    }

    fn event() -> impl Strategy<Value = SubscriberEvent> {
        prop_oneof![
            Just(E::Requested),
            Just(E::Confirmed),
            Just(E::Unsubscribed),
            Just(E::Bounced),
            Just(E::Complained),
            status().prop_map(|to| E::AdminSet { to }),
            (status(), any::<bool>()).prop_map(|(to, force)| E::Imported { to, force }),
        ]
    }

    /// What a reader or the mail system can cause.
    fn reader_event() -> impl Strategy<Value = SubscriberEvent> {
        proptest::sample::select(vec![
            E::Requested,
            E::Confirmed,
            E::Unsubscribed,
            E::Bounced,
            E::Complained,
        ])
    }

    /// Every event but an admin's own hand.
    fn unforced(event: SubscriberEvent) -> bool {
        !matches!(event, E::AdminSet { .. } | E::Imported { force: true, .. })
    }

    fn word(t: Transition) -> String {
        match t {
            Transition::To(s) => format!("→{s}"),
            Transition::Same => "same".to_owned(),
            Transition::Refused => "refused".to_owned(),
        }
    }

    #[test]
    fn the_machine_is_the_table_in_its_doc() {
        let events = [E::Requested, E::Confirmed, E::Unsubscribed, E::Bounced, E::Complained];
        let rows: Vec<(Option<S>, [&str; 5])> = vec![
            (None, ["→pending", "refused", "refused", "refused", "refused"]),
            (
                Some(S::Pending),
                ["same", "→confirmed", "→unsubscribed", "→bounced", "→complained"],
            ),
            (
                Some(S::Confirmed),
                ["refused", "same", "→unsubscribed", "→bounced", "→complained"],
            ),
            (
                Some(S::Unsubscribed),
                ["same", "→confirmed", "same", "→bounced", "→complained"],
            ),
            (Some(S::Bounced), ["refused", "refused", "same", "same", "→complained"]),
            (Some(S::Complained), ["refused", "refused", "same", "same", "same"]),
        ];
        for (from, expected) in rows {
            for (event, cell) in events.iter().zip(expected) {
                assert_eq!(word(event.transition(from)), cell, "{event:?} from {from:?}");
            }
        }
        // An admin adds people to mail; once on record, their word is final.
        for to in S::ALL.iter().copied() {
            let expected = if to.on_list() {
                Transition::To(to)
            } else {
                Transition::Refused
            };
            assert_eq!(E::AdminSet { to }.transition(None), expected);
            for from in S::ALL.iter().copied() {
                let expected = if from == to {
                    Transition::Same
                } else {
                    Transition::To(to)
                };
                assert_eq!(E::AdminSet { to }.transition(Some(from)), expected);
            }
        }
        // An import: any status for a new address; without force only further away.
        let plain = |from, to| word(E::Imported { to, force: false }.transition(Some(from)));
        assert_eq!(plain(S::Pending, S::Confirmed), "→confirmed");
        assert_eq!(plain(S::Confirmed, S::Pending), "same");
        assert_eq!(plain(S::Confirmed, S::Unsubscribed), "→unsubscribed");
        assert_eq!(plain(S::Unsubscribed, S::Pending), "refused");
        assert_eq!(plain(S::Unsubscribed, S::Bounced), "→bounced");
        assert_eq!(plain(S::Bounced, S::Unsubscribed), "refused");
        assert_eq!(plain(S::Bounced, S::Complained), "→complained");
        assert_eq!(plain(S::Complained, S::Bounced), "refused");
        assert_eq!(
            E::Imported {
                to: S::Confirmed,
                force: true
            }
            .transition(Some(S::Complained)),
            Transition::To(S::Confirmed)
        );
        assert_eq!(
            E::Imported {
                to: S::Pending,
                force: true
            }
            .transition(Some(S::Confirmed)),
            Transition::Same
        );
        assert_eq!(
            E::Imported {
                to: S::Bounced,
                force: false
            }
            .transition(None),
            Transition::To(S::Bounced)
        );
    }

    #[test]
    fn a_bounce_moves_every_address_but_a_suppressed_one() {
        assert_eq!(E::Bounced.moves_from(), [S::Pending, S::Confirmed, S::Unsubscribed]);
        assert_eq!(E::Confirmed.moves_from(), [S::Pending, S::Unsubscribed]);
        assert_eq!(E::Unsubscribed.moves_from(), [S::Pending, S::Confirmed]);
        assert!(E::Requested.moves_from().is_empty());
    }

    proptest! {
        /// Every event from every status, or from no record, has one defined answer: a
        /// move to the event's own target, which is never where it started, or "same" for
        /// an address on record.
        #[test]
        fn every_answer_is_defined_and_moves_only_to_the_event_target(
            from in proptest::option::of(status()),
            event in event(),
        ) {
            match event.transition(from) {
                Transition::To(to) => {
                    prop_assert_eq!(to, event.target());
                    prop_assert_ne!(Some(to), from);
                    prop_assert!(!event.moves_from().contains(&to));
                }
                Transition::Same => prop_assert!(from.is_some()),
                Transition::Refused => {}
            }
            if let Some(from) = from {
                prop_assert_eq!(
                    event.moves_from().contains(&from),
                    matches!(event.transition(Some(from)), Transition::To(_))
                );
            }
        }

        /// Whatever moved an address, the same event again changes nothing.
        #[test]
        fn events_are_idempotent(from in proptest::option::of(status()), event in event()) {
            if let Transition::To(to) = event.transition(from) {
                prop_assert!(!matches!(event.transition(Some(to)), Transition::To(_)));
            }
        }

        /// A suppressed address (bounced, complained) is never brought closer to the list
        /// but by an admin or a forced import; a complaint is never weakened.
        #[test]
        fn suppressed_addresses_come_back_only_by_force(from in status(), event in event()) {
            if from.suppressed()
                && unforced(event)
                && let Transition::To(to) = event.transition(Some(from))
            {
                prop_assert!(to.departure() > from.departure(), "{:?}: {:?} → {:?}", event, from, to);
            }
        }

        /// Without an admin's hand, an address is confirmed only by following a link, and
        /// only from pending or unsubscribed; or by an import of a list whose consent was
        /// collected elsewhere, of a new address or a pending one.
        #[test]
        fn confirmation_comes_from_a_link_or_an_admin(from in proptest::option::of(status()), event in event()) {
            if unforced(event) && event.transition(from) == Transition::To(S::Confirmed) {
                match event {
                    E::Confirmed => prop_assert!(matches!(from, Some(S::Pending | S::Unsubscribed))),
                    E::Imported { .. } => prop_assert!(matches!(from, None | Some(S::Pending))),
                    other => prop_assert!(false, "{:?} confirmed {:?}", other, from),
                }
            }
        }

        /// A request never changes an existing status: a stranger filling in the form can
        /// only ask for a confirmation link to be mailed.
        #[test]
        fn a_request_changes_no_status(from in status()) {
            prop_assert!(!matches!(E::Requested.transition(Some(from)), Transition::To(_)));
        }

        /// Run as a life, from no record, through what readers and the mail system do. A
        /// confirmation link is live from an accepted request until it is followed or the
        /// address leaves (the store voids it), and the store lets only a live link reach
        /// the machine. While a link is live the address is pending or unsubscribed, so
        /// following it always confirms; nothing else confirms anyone.
        #[test]
        fn a_life_of_events_confirms_only_through_a_live_link(
            events in proptest::collection::vec(reader_event(), 0..40)
        ) {
            let mut status: Option<S> = None;
            let mut live_link = false;
            for event in events {
                if event == E::Confirmed && !live_link {
                    continue;
                }
                let answer = event.transition(status);
                match (event, answer) {
                    (E::Confirmed, _) => {
                        prop_assert_eq!(answer, Transition::To(S::Confirmed));
                        live_link = false;
                    }
                    (_, Transition::To(S::Confirmed)) => prop_assert!(false, "{:?} confirmed {:?}", event, status),
                    (E::Requested, Transition::To(_) | Transition::Same) => live_link = true,
                    (_, Transition::To(to)) if !to.on_list() => live_link = false,
                    _ => {}
                }
                if let Transition::To(to) = answer {
                    status = Some(to);
                }
                if live_link {
                    prop_assert!(matches!(status, Some(S::Pending | S::Unsubscribed)), "{:?}", status);
                }
            }
        }
    }
}
