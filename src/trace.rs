//! Protocol traces: the runs of SPEC §6's protocols, drawn as Mermaid sequence diagrams
//! from the real event log (`--mermaid FILE` of `run` and `simulate`).
//!
//! A [`Trace`] observes every [`Event`] and keeps the steps of the **first** run of each
//! protocol (join, power purchase, data trade), with the outcome events of that run
//! (`JoinDone`, `TradeSettled`, `DataDelivered`, ...). The first run is the first seen from
//! its step 1; a run first seen half-way is drawn only if no whole one comes. Of every other run it keeps only its
//! id, and only while the run is live, to count the runs: memory stays bounded however long
//! the federation runs.
//!
//! Two renderings, because a Mermaid file holds one diagram:
//! - [`Trace::mermaid`]: one `sequenceDiagram`, the protocols one after another, each
//!   opened by a `Note` spanning its participants. mermaid-cli and mermaid.live render it.
//! - [`Trace::markdown`]: a Markdown document with a heading and a fenced ` ```mermaid `
//!   block per protocol, which GitHub renders in place.
//!
//! In both, a participant is a node by name (`source-wind`), `<consortium> members` for a
//! broadcast in a consortium, or `relay chain` for a broadcast to every relay. Arrows are
//! `step N: what`: `->>` to one node, `-)` for a broadcast. The last note says how many
//! runs were left out.

use std::collections::BTreeMap;

use ieschain_core::node::{Event, Protocol, StepTarget};
use ieschain_core::{Address, ConsortiumId, Hash};

/// The protocols in the order of SPEC §6.
const PROTOCOLS: [Protocol; 3] = [Protocol::Join, Protocol::PowerPurchase, Protocol::DataTrade];

/// Items (steps and outcomes) kept of a first run: a join with thousands of members would
/// otherwise draw thousands of receipts.
pub const MAX_ITEMS: usize = 60;

/// How long a run's id is remembered after its last event, ms: far longer than any
/// protocol's deadline, so a run is counted once.
const LIVE_MS: u64 = 10 * 60 * 1_000;

/// Live run ids remembered per protocol before the old ones are pruned.
const LIVE_CAP: usize = 4_096;

/// Who takes part in a drawn run: a lifeline of the diagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Party {
    /// One node.
    Node(Address),
    /// Every member of a consortium.
    Members(ConsortiumId),
    /// Every relay.
    Relays,
}

impl From<&StepTarget> for Party {
    fn from(target: &StepTarget) -> Self {
        match target {
            StepTarget::Node(address) => Party::Node(*address),
            StepTarget::Consortium(c) => Party::Members(*c),
            StepTarget::Relays => Party::Relays,
        }
    }
}

/// One line of a drawn run.
#[derive(Clone, Debug)]
enum Item {
    /// A protocol step: an arrow.
    Step {
        step: u8,
        from: Address,
        to: Party,
        what: String,
    },
    /// An outcome: a note over the parties it concerns.
    Outcome { over: Vec<Address>, text: String },
}

/// The first run of one protocol, as drawn.
#[derive(Clone, Debug)]
struct FirstRun {
    /// Its id: the newcomer's registry leaf, or the offer's digest.
    run: Hash,
    /// Whether it was seen from its step 1.
    opened: bool,
    /// For a join, the newcomer: whoever took the run's first step (SPEC §6.1 step 1).
    opener: Option<Address>,
    /// Parties in order of appearance.
    parties: Vec<Party>,
    /// Steps and outcomes in the order observed, at most [`MAX_ITEMS`].
    items: Vec<Item>,
    /// Items observed beyond [`MAX_ITEMS`].
    left_out: u64,
}

impl FirstRun {
    fn new(run: Hash, opened: bool) -> Self {
        FirstRun {
            run,
            opened,
            opener: None,
            parties: Vec::new(),
            items: Vec::new(),
            left_out: 0,
        }
    }

    fn push(&mut self, item: Item) {
        if self.items.len() >= MAX_ITEMS {
            self.left_out += 1;
            return;
        }
        let parties: Vec<Party> = match &item {
            Item::Step { from, to, .. } => vec![Party::Node(*from), *to],
            Item::Outcome { over, .. } => over.iter().map(|a| Party::Node(*a)).collect(),
        };
        for party in parties {
            if !self.parties.contains(&party) {
                self.parties.push(party);
            }
        }
        self.items.push(item);
    }

    /// Whether `address` appears in a step, as its sender or its one receiver.
    fn involves(&self, address: &Address) -> bool {
        self.items.iter().any(|item| match item {
            Item::Step { from, to, .. } => from == address || *to == Party::Node(*address),
            Item::Outcome { .. } => false,
        })
    }

    fn has_outcome(&self) -> bool {
        self.items
            .iter()
            .any(|item| matches!(item, Item::Outcome { .. }))
    }
}

/// The runs of one protocol seen so far.
#[derive(Clone, Debug, Default)]
struct Runs {
    /// The first run, drawn.
    first: Option<FirstRun>,
    /// Distinct runs seen, the first included.
    count: u64,
    /// Ids of the runs seen in the last [`LIVE_MS`], with the time of their last event.
    live: BTreeMap<Hash, u64>,
}

impl Runs {
    /// Counts `run` if it is new; returns whether it is the run to draw. That is the first
    /// run seen from its step 1 (`opens`): a run first seen half-way (its beginning was
    /// missed, or went unreported) is drawn only until a whole one comes.
    fn see(&mut self, run: Hash, at: u64, opens: bool) -> bool {
        let is_first = self.first.as_ref().is_some_and(|f| f.run == run);
        let new = self.live.insert(run, at).is_none();
        if new {
            self.count += 1;
            if self.live.len() > LIVE_CAP {
                let horizon = at.saturating_sub(LIVE_MS);
                self.live.retain(|_, last| *last >= horizon);
            }
        }
        if is_first {
            return true;
        }
        let replace = match &self.first {
            None => true,
            Some(first) => new && opens && !first.opened,
        };
        if replace {
            self.first = Some(FirstRun::new(run, opens));
        }
        replace
    }
}

/// The protocol runs of a federation, observed from its events, for drawing.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    runs: BTreeMap<Protocol, Runs>,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Trace::default()
    }

    /// Takes in one event; events that are not part of a protocol run are ignored.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Step {
                protocol,
                run,
                step,
                from,
                to,
                what,
                at,
            } => {
                let runs = self.runs.entry(*protocol).or_default();
                if runs.see(*run, *at, *step == 1) {
                    if let Some(first) = runs.first.as_mut() {
                        first.opener.get_or_insert(*from);
                        first.push(Item::Step {
                            step: *step,
                            from: *from,
                            to: to.into(),
                            what: what.clone(),
                        });
                    }
                }
            }
            Event::JoinDone {
                newcomer, receipts, ..
            } => self.join_outcome(
                newcomer,
                format!("joined with {receipts} receipt{}", plural(*receipts as u64)),
            ),
            Event::JoinFailed {
                newcomer, reason, ..
            } => self.join_outcome(newcomer, format!("join failed: {reason}")),
            Event::TradeSettled {
                offer,
                seller,
                buyer,
                wh,
                amount,
                at,
                ..
            } => self.trade_outcome(
                Protocol::PowerPurchase,
                *offer,
                *at,
                vec![*seller, *buyer],
                format!("settled: {wh} Wh for {amount}"),
            ),
            Event::TradeRefused {
                offer,
                by,
                reason,
                at,
                ..
            } => self.trade_outcome(
                Protocol::PowerPurchase,
                *offer,
                *at,
                vec![*by],
                format!("refused: {reason}"),
            ),
            Event::DataDelivered {
                offer,
                seller,
                buyer,
                bytes,
                at,
                ..
            } => self.trade_outcome(
                Protocol::DataTrade,
                *offer,
                *at,
                vec![*seller, *buyer],
                format!("delivered {bytes} bytes, digest matches the chain"),
            ),
            Event::DataDisputed {
                offer,
                seller,
                buyer,
                at,
                ..
            } => self.trade_outcome(
                Protocol::DataTrade,
                *offer,
                *at,
                vec![*seller, *buyer],
                "disputed: the data does not match the digest on the chain".to_string(),
            ),
            _ => {}
        }
    }

    /// A join's outcome names the newcomer, not the run: it belongs to the first run when
    /// the newcomer opened it, or, failing that, took part in it and it has no outcome yet.
    fn join_outcome(&mut self, newcomer: &Address, text: String) {
        let Some(first) = self
            .runs
            .get_mut(&Protocol::Join)
            .and_then(|runs| runs.first.as_mut())
        else {
            return;
        };
        let belongs =
            first.opener == Some(*newcomer) || (!first.has_outcome() && first.involves(newcomer));
        if belongs {
            first.push(Item::Outcome {
                over: vec![*newcomer],
                text,
            });
        }
    }

    /// A trade's outcome names its offer, which is the run.
    fn trade_outcome(
        &mut self,
        protocol: Protocol,
        offer: Hash,
        at: u64,
        over: Vec<Address>,
        text: String,
    ) {
        let runs = self.runs.entry(protocol).or_default();
        if runs.see(offer, at, false) {
            if let Some(first) = runs.first.as_mut() {
                first.push(Item::Outcome { over, text });
            }
        }
    }

    /// Distinct runs of `protocol` observed, the drawn one included.
    pub fn runs(&self, protocol: Protocol) -> u64 {
        self.runs.get(&protocol).map_or(0, |r| r.count)
    }

    /// "2 join runs, 1 power purchase, 0 data trades": the runs observed.
    pub fn summary(&self) -> String {
        PROTOCOLS
            .iter()
            .map(|p| format!("{} {}", self.runs(*p), noun(*p, self.runs(*p))))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Runs observed but not drawn, of every protocol.
    pub fn left_out(&self) -> u64 {
        PROTOCOLS
            .iter()
            .map(|p| self.runs(*p).saturating_sub(1))
            .sum()
    }

    /// One Mermaid `sequenceDiagram` of the first run of each protocol, in the order of
    /// SPEC §6, each opened by a note spanning its participants; a last note says how many
    /// runs were left out. Valid Mermaid even when no run was observed.
    pub fn mermaid(
        &self,
        name_of: &dyn Fn(&Address) -> String,
        consortium_name: &dyn Fn(ConsortiumId) -> String,
    ) -> String {
        let drawn: Vec<(Protocol, &FirstRun)> = PROTOCOLS
            .iter()
            .filter_map(|p| Some((*p, self.runs.get(p)?.first.as_ref()?)))
            .collect();
        let mut parties: Vec<Party> = Vec::new();
        for (_, first) in &drawn {
            for party in &first.parties {
                if !parties.contains(party) {
                    parties.push(*party);
                }
            }
        }
        let ids = Ids::new(&parties, name_of, consortium_name);
        let mut out = String::from("sequenceDiagram\n");
        if drawn.is_empty() {
            out.push_str("    participant federation\n");
            out.push_str("    Note over federation: no protocol runs were observed\n");
            return out;
        }
        ids.declare(&mut out);
        for (protocol, first) in &drawn {
            let section = format!(
                "{} ({}), run {}",
                title(*protocol),
                section_of(*protocol),
                first.run.short()
            );
            out.push_str(&format!(
                "    Note over {}: {}\n",
                ids.span(&first.parties),
                escape(&section)
            ));
            draw(&mut out, first, &ids);
        }
        if let Some(text) = self.left_out_text() {
            out.push_str(&format!(
                "    Note over {}: {}\n",
                ids.span(&parties),
                escape(&text)
            ));
        }
        out
    }

    /// A Markdown document with one fenced `mermaid` block per protocol, for GitHub.
    pub fn markdown(
        &self,
        name_of: &dyn Fn(&Address) -> String,
        consortium_name: &dyn Fn(ConsortiumId) -> String,
    ) -> String {
        let mut out = String::from(
            "# Protocol traces\n\nThe first run of each protocol of SPEC §6, drawn from the event log.\n",
        );
        for protocol in PROTOCOLS {
            out.push_str(&format!(
                "\n## {} ({})\n\n",
                title(protocol),
                section_of(protocol)
            ));
            let runs = self.runs(protocol);
            let Some(first) = self.runs.get(&protocol).and_then(|r| r.first.as_ref()) else {
                out.push_str(&format!("No {} was observed.\n", noun(protocol, 1)));
                continue;
            };
            out.push_str(&format!(
                "Run `{}`, the first of {runs} {} observed.\n\n",
                first.run.short(),
                noun(protocol, runs)
            ));
            let ids = Ids::new(&first.parties, name_of, consortium_name);
            out.push_str("```mermaid\nsequenceDiagram\n");
            ids.declare(&mut out);
            draw(&mut out, first, &ids);
            out.push_str("```\n");
        }
        if let Some(text) = self.left_out_text() {
            out.push_str(&format!("\n{text}.\n"));
        }
        out
    }

    /// "N more join runs, M more power purchases, K more data trades not drawn", naming
    /// only the protocols that had runs left out.
    fn left_out_text(&self) -> Option<String> {
        let parts: Vec<String> = PROTOCOLS
            .iter()
            .filter_map(|p| {
                let more = self.runs(*p).saturating_sub(1);
                (more > 0).then(|| format!("{more} more {}", noun(*p, more)))
            })
            .collect();
        (!parts.is_empty()).then(|| format!("{} not drawn", parts.join(", ")))
    }
}

/// Draws the items of a run.
fn draw(out: &mut String, first: &FirstRun, ids: &Ids) {
    for item in &first.items {
        match item {
            Item::Step {
                step,
                from,
                to,
                what,
            } => {
                let arrow = match to {
                    Party::Node(_) => "->>",
                    Party::Members(_) | Party::Relays => "-)",
                };
                out.push_str(&format!(
                    "    {}{arrow}{}: step {step}: {}\n",
                    ids.id(&Party::Node(*from)),
                    ids.id(to),
                    escape(what)
                ));
            }
            Item::Outcome { over, text } => {
                let over: Vec<Party> = over.iter().map(|a| Party::Node(*a)).collect();
                out.push_str(&format!(
                    "    Note over {}: {}\n",
                    ids.span(&over),
                    escape(text)
                ));
            }
        }
    }
    if first.left_out > 0 {
        out.push_str(&format!(
            "    Note over {}: {} more step{} of this run not drawn\n",
            ids.span(&first.parties),
            first.left_out,
            plural(first.left_out)
        ));
    }
}

/// The participants of a diagram: their Mermaid ids (letters, digits and `_`, unique) and
/// their labels, in order of appearance.
struct Ids {
    order: Vec<(Party, String, String)>,
}

impl Ids {
    fn new(
        parties: &[Party],
        name_of: &dyn Fn(&Address) -> String,
        consortium_name: &dyn Fn(ConsortiumId) -> String,
    ) -> Self {
        let mut order: Vec<(Party, String, String)> = Vec::new();
        for party in parties {
            let label = match party {
                Party::Node(address) => name_of(address),
                Party::Members(c) => format!("{} members", consortium_name(*c)),
                Party::Relays => "relay chain".to_string(),
            };
            let base = sanitize(&label);
            let mut id = base.clone();
            let mut n = 2;
            while order.iter().any(|(_, other, _)| *other == id) {
                id = format!("{base}_{n}");
                n += 1;
            }
            order.push((*party, id, label));
        }
        Ids { order }
    }

    fn declare(&self, out: &mut String) {
        for (_, id, label) in &self.order {
            out.push_str(&format!("    participant {id} as {}\n", escape(label)));
        }
    }

    fn id(&self, party: &Party) -> &str {
        self.order
            .iter()
            .find(|(p, _, _)| p == party)
            .map_or("unknown", |(_, id, _)| id.as_str())
    }

    /// `a` or `a,b`: the leftmost and rightmost of `parties` in the diagram's order.
    fn span(&self, parties: &[Party]) -> String {
        let positions: Vec<usize> = parties
            .iter()
            .filter_map(|p| self.order.iter().position(|(q, _, _)| q == p))
            .collect();
        let (Some(low), Some(high)) = (positions.iter().min(), positions.iter().max()) else {
            return self.id(&Party::Relays).to_string();
        };
        if low == high {
            self.order[*low].1.clone()
        } else {
            format!("{},{}", self.order[*low].1, self.order[*high].1)
        }
    }
}

/// A Mermaid participant id for `label`: ASCII letters, digits and `_`, starting with a
/// letter, never a keyword (`end`, `loop`, ... all get the `n_` prefix).
fn sanitize(label: &str) -> String {
    let body: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("n_{body}")
}

/// Text for a message or a note: Mermaid ends a statement at `;` and a newline, and reads
/// `#...;` as a character code, so those become codes themselves.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The protocol's title in a heading.
fn title(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Join => "Join",
        Protocol::PowerPurchase => "Power purchase",
        Protocol::DataTrade => "Data trade",
    }
}

fn section_of(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Join => "SPEC §6.1",
        Protocol::PowerPurchase => "SPEC §6.2",
        Protocol::DataTrade => "SPEC §6.3",
    }
}

/// "join run(s)", "power purchase(s)", "data trade(s)".
fn noun(protocol: Protocol, n: u64) -> String {
    let one = match protocol {
        Protocol::Join => "join run",
        Protocol::PowerPurchase => "power purchase",
        Protocol::DataTrade => "data trade",
    };
    format!("{one}{}", plural(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u8) -> Address {
        Address([n; 20])
    }

    fn hash(n: u8) -> Hash {
        Hash([n; 32])
    }

    fn names(a: &Address) -> String {
        match a.0[0] {
            1 => "source-wind".into(),
            2 => "load-home".into(),
            3 => "grid-relay".into(),
            4 => "new;comer#1".into(),
            5 => "grid-member".into(),
            _ => a.short(),
        }
    }

    fn consortium(c: ConsortiumId) -> String {
        ["source", "load", "grid"][c.0 as usize].to_string()
    }

    fn step(protocol: Protocol, run: u8, step: u8, from: u8, to: StepTarget, what: &str) -> Event {
        Event::Step {
            protocol,
            run: hash(run),
            step,
            from: address(from),
            to,
            what: what.into(),
            at: u64::from(step) * 10,
        }
    }

    /// Two power purchases and one join, interleaved as a log would have them.
    fn sample() -> Trace {
        let mut trace = Trace::new();
        let pp = Protocol::PowerPurchase;
        for event in [
            step(pp, 10, 1, 1, StepTarget::Relays, "urgent offer 500 Wh"),
            step(
                Protocol::Join,
                20,
                1,
                4,
                StepTarget::Node(address(5)),
                "join intent",
            ),
            step(pp, 11, 1, 1, StepTarget::Relays, "second offer"),
            step(pp, 10, 4, 2, StepTarget::Node(address(1)), "bid"),
            step(
                pp,
                10,
                5,
                1,
                StepTarget::Consortium(ConsortiumId(2)),
                "agreed trade",
            ),
            step(pp, 11, 4, 2, StepTarget::Node(address(1)), "second bid"),
            step(
                Protocol::Join,
                20,
                6,
                5,
                StepTarget::Node(address(4)),
                "receipt",
            ),
            Event::TradeSettled {
                trade: hash(99),
                offer: hash(10),
                seller: address(1),
                buyer: address(2),
                wh: 500,
                amount: 60,
                at: 70,
            },
            Event::JoinDone {
                newcomer: address(4),
                consortium: ConsortiumId(2),
                receipts: 1,
                at: 80,
            },
            Event::TradeRefused {
                trade: hash(98),
                offer: hash(11),
                buyer: address(4),
                by: address(3),
                reason: "line full".into(),
                at: 90,
            },
        ] {
            trace.observe(&event);
        }
        trace
    }

    /// The single diagram draws the first run of each protocol, aliases participants with
    /// clean ids, puts the outcome in a note, and counts the run left out.
    #[test]
    fn mermaid_draws_first_runs_and_counts_the_rest() {
        let trace = sample();
        assert_eq!(trace.runs(Protocol::PowerPurchase), 2);
        assert_eq!(trace.runs(Protocol::Join), 1);
        assert_eq!(trace.runs(Protocol::DataTrade), 0);
        assert_eq!(trace.left_out(), 1);
        assert_eq!(
            trace.summary(),
            "1 join run, 2 power purchases, 0 data trades"
        );
        let text = trace.mermaid(&names, &consortium);
        assert!(text.starts_with("sequenceDiagram\n"), "{text}");
        assert!(
            text.contains("participant n_source_wind as source-wind"),
            "{text}"
        );
        assert!(
            text.contains("participant n_grid_members as grid members"),
            "{text}"
        );
        assert!(
            text.contains("participant n_relay_chain as relay chain"),
            "{text}"
        );
        assert!(
            text.contains("participant n_new_comer_1 as new#59;comer#35;1"),
            "{text}"
        );
        assert!(text.contains("n_source_wind-)n_relay_chain: step 1: urgent offer 500 Wh"));
        assert!(text.contains("n_load_home->>n_source_wind: step 4: bid\n"));
        assert!(text.contains("n_new_comer_1->>n_grid_member: step 1: join intent"));
        assert!(text.contains("Note over n_source_wind,n_load_home: settled: 500 Wh for 60"));
        assert!(text.contains("Note over n_new_comer_1: joined with 1 receipt\n"));
        // The second power purchase is counted, not drawn.
        assert!(!text.contains("second"), "{text}");
        assert!(!text.contains("line full"), "{text}");
        assert!(text.contains("1 more power purchase not drawn"), "{text}");
        // Join comes first, as in SPEC §6.
        let join = text.find("Join (SPEC §6.1)").unwrap();
        let power = text.find("Power purchase (SPEC §6.2)").unwrap();
        assert!(join < power);
        // Every statement is one line without the characters Mermaid reads as syntax.
        for line in text.lines().skip(1) {
            assert!(!line.contains(';') || line.contains("#59;"), "{line}");
        }
    }

    /// The Markdown rendering has one fenced block per drawn protocol and says which
    /// protocol had no run.
    #[test]
    fn markdown_has_one_fenced_block_per_protocol() {
        let text = sample().markdown(&names, &consortium);
        assert_eq!(
            text.matches("```mermaid\nsequenceDiagram\n").count(),
            2,
            "{text}"
        );
        assert!(text.contains("No data trade was observed."), "{text}");
        assert!(
            text.contains("the first of 2 power purchases observed"),
            "{text}"
        );
        assert!(text.contains("1 more power purchase not drawn."), "{text}");
        // Each block declares only its own participants.
        let join_block = text.split("```mermaid").nth(1).unwrap();
        let join_block = join_block.split("```").next().unwrap();
        assert!(!join_block.contains("source-wind"), "{join_block}");
    }

    /// With no run at all the diagram is still valid Mermaid and says so.
    #[test]
    fn empty_trace_is_valid_mermaid() {
        let mut trace = Trace::new();
        trace.observe(&Event::CutOff {
            consortium: ConsortiumId(0),
            at: 1,
        });
        let text = trace.mermaid(&names, &consortium);
        assert_eq!(
            text,
            "sequenceDiagram\n    participant federation\n    Note over federation: no protocol runs were observed\n"
        );
        assert_eq!(
            trace.markdown(&names, &consortium).matches("No ").count(),
            3
        );
    }

    /// Long runs keep bounded memory: the first run's items are capped, other runs are only
    /// counted, each once however many events it has.
    #[test]
    fn memory_is_bounded_and_runs_are_counted_once() {
        let mut trace = Trace::new();
        for run in 0..200u8 {
            for i in 0..100u8 {
                trace.observe(&step(
                    Protocol::DataTrade,
                    run,
                    i % 6 + 1,
                    1,
                    StepTarget::Node(address(2)),
                    "offer",
                ));
            }
        }
        assert_eq!(trace.runs(Protocol::DataTrade), 200);
        let first = trace.runs[&Protocol::DataTrade].first.as_ref().unwrap();
        assert_eq!(first.items.len(), MAX_ITEMS);
        assert_eq!(first.left_out, 100 - MAX_ITEMS as u64);
        let text = trace.mermaid(&names, &consortium);
        assert!(
            text.contains("40 more steps of this run not drawn"),
            "{text}"
        );
        assert!(text.contains("199 more data trades not drawn"), "{text}");
    }

    /// A run seen half-way (from its step 4) is counted, and drawn only until a run seen
    /// from its step 1 comes.
    #[test]
    fn a_whole_run_is_drawn_before_a_partial_one() {
        let dt = Protocol::DataTrade;
        let mut trace = Trace::new();
        trace.observe(&step(
            dt,
            1,
            4,
            1,
            StepTarget::Consortium(ConsortiumId(0)),
            "stub",
        ));
        assert!(trace.mermaid(&names, &consortium).contains("step 4: stub"));
        for event in [
            step(
                dt,
                2,
                1,
                2,
                StepTarget::Consortium(ConsortiumId(1)),
                "offer",
            ),
            step(dt, 1, 5, 1, StepTarget::Node(address(2)), "stub again"),
            step(
                dt,
                3,
                1,
                2,
                StepTarget::Consortium(ConsortiumId(1)),
                "other offer",
            ),
            step(dt, 2, 5, 1, StepTarget::Node(address(2)), "buys"),
        ] {
            trace.observe(&event);
        }
        assert_eq!(trace.runs(dt), 3);
        let text = trace.mermaid(&names, &consortium);
        assert!(text.contains("step 1: offer\n"), "{text}");
        assert!(text.contains("step 5: buys"), "{text}");
        assert!(!text.contains("stub") && !text.contains("other"), "{text}");
        assert!(text.contains("2 more data trades not drawn"), "{text}");
    }

    /// Ids stay unique when two names sanitize alike.
    #[test]
    fn ids_are_unique() {
        let parties = [Party::Node(address(7)), Party::Node(address(8))];
        let ids = Ids::new(
            &parties,
            &|a: &Address| if a.0[0] == 7 { "a-b" } else { "a.b" }.to_string(),
            &consortium,
        );
        assert_eq!(ids.id(&parties[0]), "n_a_b");
        assert_eq!(ids.id(&parties[1]), "n_a_b_2");
    }
}
