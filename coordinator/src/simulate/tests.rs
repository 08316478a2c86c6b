//! The simulation under the default rules, from fixed seeds.

use super::*;

fn defaults() -> Config {
    Config::local(std::path::PathBuf::from("unused"))
}

/// Long enough for the held-back rewards a cheat forfeits to build up, for a Sybil to move keys twice
/// and for the vote capturer's proposal to be tallied; a few seconds in a debug build.
const ROUNDS: u64 = 1_500;

#[tokio::test]
async fn every_cheat_earns_less_than_honest_play_under_the_defaults() {
    let sim = Simulation {
        seed: 7,
        rounds: ROUNDS,
        actors: Actors::default(),
    };
    let report = run(&defaults(), &sim).await.expect("the simulation runs");
    println!("{}", report.to_markdown());

    for honest in [
        Strategy::HonestTranscoder,
        Strategy::HonestHost,
        Strategy::HonestSender,
    ] {
        let row = report.row(honest).expect("honest row");
        assert!(
            row.profit_per_round > 0.0,
            "{} should earn under the defaults: {row:?}",
            honest.name()
        );
    }
    for row in &report.rows {
        if let Some(margin) = row.margin() {
            println!("{}: margin {margin:+.1} units a round", row.strategy.name());
        }
    }
    assert!(
        report.paying().is_empty(),
        "cheats that pay under the defaults: {:?}",
        report.paying()
    );
    assert_eq!(
        report.rows.iter().filter(|r| r.margin().is_some()).count(),
        7,
        "every cheat is measured"
    );
}

#[tokio::test]
async fn the_outcomes_come_from_the_ledger_rules() {
    let actors = Actors {
        per_strategy: 2,
        ..Actors::default()
    };
    let sim = Simulation {
        seed: 11,
        rounds: 600,
        actors: actors.clone(),
    };
    let config = defaults();
    let mut world = World::new(&config, &sim).expect("world");
    world.setup().expect("setup");
    let steps = sim.rounds / world.rounds_per_step;
    for step in 0..steps {
        world.step(step, steps).await.expect("step");
    }
    let of = |s: Strategy| {
        world
            .cast
            .iter()
            .filter(move |a| a.strategy == s)
            .map(|a| a.events)
            .fold(Events::default(), |mut sum, e| {
                add_events(&mut sum, &e);
                sum
            })
    };
    // A lazy worker past its always-checked first jobs is caught on a tenth of the rest.
    let lazy = of(Strategy::LazyTranscoder);
    assert!(lazy.slashes > 0 && lazy.slashes < lazy.jobs, "{lazy:?}");
    // A deleter keeping 90 % of its chunks passes a challenged blob with 0.9^16 < 0.2.
    assert!(of(Strategy::DataDeleter).slashes > 0);
    // A late answer fails every challenged blob, and a storage fault forfeits what is held back.
    let outsourced = of(Strategy::Outsourcer);
    assert!(outsourced.missed_deadlines > 0, "{outsourced:?}");
    assert!(outsourced.slashes >= outsourced.missed_deadlines * 32);
    assert!(outsourced.forfeited > 0, "{outsourced:?}");
    assert_eq!(of(Strategy::HonestHost).slashes, 0);
    assert_eq!(of(Strategy::HonestTranscoder).slashes, 0);
    // The withholder is unlocking and short: the coordinator's check refuses every job it sends.
    let withheld = of(Strategy::TicketWithholder);
    assert!(withheld.refused_jobs > 0);
    let refused_honest = of(Strategy::HonestSender).refused_jobs;
    assert_eq!(refused_honest, 0);
    // The capturer's flash stake, bonded in its proposal's round, counts for nothing.
    let captured = of(Strategy::VoteCapturer);
    assert_eq!(captured.vote_weight, 2 * actors.capturer_stake);
    assert!(!captured.vote_refused);
    assert_eq!(captured.proposal_paid, 0, "honest turnout outvotes it");
    // Weight bought stays with the SIP.
    let drained = of(Strategy::SipDrainer);
    assert!(drained.weight_bought > 0);
    let purchases = world
        .ledger
        .sip_status(0)
        .expect("sip")
        .totals
        .iter()
        .find(|(s, ..)| *s == crate::ledger::SipSource::Purchases)
        .map(|(_, i, _)| *i)
        .expect("purchases");
    assert_eq!(purchases, drained.spent_on_weight);
}

#[tokio::test]
async fn a_seed_repeats_its_report() {
    let sim = Simulation {
        seed: 3,
        rounds: 200,
        actors: Actors {
            per_strategy: 1,
            ..Actors::default()
        },
    };
    let first = run(&defaults(), &sim).await.expect("first");
    let second = run(&defaults(), &sim).await.expect("second");
    assert_eq!(first, second);
}

#[tokio::test]
async fn parameters_out_of_range_are_refused_with_the_reason() {
    let config = defaults();
    let short = Simulation {
        seed: 1,
        rounds: 2,
        actors: Actors::default(),
    };
    let err = run(&config, &short).await.expect_err("too short");
    assert!(err.to_string().contains("--rounds = 2"), "{err}");
    let odd = Simulation {
        seed: 1,
        rounds: 100,
        actors: Actors {
            outsourcer_miss: 1.5,
            ..Actors::default()
        },
    };
    let err = run(&config, &odd).await.expect_err("not a probability");
    assert!(err.to_string().contains("--outsourcer-miss = 1.5"), "{err}");
}
