//! `dualrig`: the client command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dualrig_client::{DualrigClient, LadderOptions};
use dualrig_proto::amount::{format_tokens, parse_tokens};
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::ledger_request::{CollectiveRules, Operation, ProposalKind, VoteChoice};
use dualrig_proto::profile::{DEFAULT_LADDER, Profile};
use indicatif::{ProgressBar, ProgressStyle};

/// Buy transcoding from the dualrig network.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The coordinator's gRPC URL.
    #[arg(
        long,
        global = true,
        env = "DUALRIG_COORDINATOR",
        default_value = "http://127.0.0.1:7300"
    )]
    coordinator: String,
    /// The account's ed25519 key file, created (0600) on first use [default: ~/.dualrig/client.key].
    #[arg(long, global = true, env = "DUALRIG_KEY")]
    key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Transcode a segment or a whole video into an HLS adaptive-bitrate ladder.
    Transcode {
        /// A video file FFmpeg can read (MP4, MPEG-TS, MKV, ...).
        input: PathBuf,
        /// Directory that receives master.m3u8, one playlist per rendition and the segments.
        #[arg(long)]
        out: PathBuf,
        /// Renditions to make, from 1080p, 720p, 480p, 360p, 240p.
        #[arg(long, default_value_t = DEFAULT_LADDER.join(","))]
        profiles: String,
        /// Segments in flight at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Target segment length in seconds (cuts fall on keyframes).
        #[arg(long, default_value_t = 2.0)]
        segment_secs: f64,
        /// Pay each segment's worker with tickets signed by --key.
        #[arg(long)]
        pay: bool,
        /// Most base units per output pixel to pay a worker; implies --pay.
        #[arg(long)]
        max_price: Option<u64>,
        /// Seconds a segment keeps being sent again, with growing waits, while the coordinator
        /// cannot be reached or asks to try later (0: fail at once).
        #[arg(long, default_value_t = 120)]
        retry_secs: u64,
        /// Start over in --out, forgetting the segments an earlier run recorded there.
        #[arg(long)]
        fresh: bool,
    },
    /// Store files on the network; prints each file's root (the same as b3sum) and its holders.
    Put {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Distinct workers to keep each file on (0: the coordinator's default, or the collective's).
        #[arg(long, default_value_t = 3)]
        replicas: u32,
        /// Store the files for this collective: only its members can fetch them, and its owner can
        /// add them (`dualrig collective add`). A file once stored public cannot be gated later.
        #[arg(long, value_parser = parse_collective)]
        collective: Option<String>,
    },
    /// Fetch a blob (or a byte range of it), verified against its root before anything is written.
    Get {
        /// The blob's root, 64 hex digits.
        #[arg(value_parser = dualrig_client::parse_root)]
        root: [u8; 32],
        /// The file to write.
        #[arg(short, long)]
        out: PathBuf,
        /// Only bytes START..END (END exclusive; either may be left out).
        #[arg(long, value_parser = parse_range)]
        range: Option<(Option<u64>, Option<u64>)>,
        /// Pay the serving holder per byte with tickets signed by --key (needed when every holder
        /// charges), 32 MiB at a time, each piece before it is streamed.
        #[arg(long)]
        pay: bool,
        /// Most base units per byte to pay a holder; implies --pay.
        #[arg(long)]
        max_price: Option<u64>,
        /// Ask anonymously even when a key is at hand (a collective's blob is then refused).
        #[arg(long)]
        anonymous: bool,
    },
    /// Collectives: named sets of blobs that only their members, who lock an access stake, fetch.
    #[command(subcommand)]
    Collective(CollectiveCommand),
    /// List the blobs the network keeps, with size and holders.
    Ls,
    /// List the workers connected to the coordinator.
    Workers,
    /// List the coordinators sharing this coordinator's database: key, address, last heartbeat, and
    /// which one holds the round clock.
    Coordinators,
    /// Show an account: balance, deposit and reserve, stake, unbonding, nonce (yours by default).
    Account {
        /// The account's id (64 hex digits).
        #[arg(value_parser = parse_id)]
        id: Option<PublicId>,
    },
    /// Move tokens from your balance to your deposit, which pays the workers' winning tickets.
    Deposit {
        /// Tokens, up to 6 decimals (1.5 = 1,500,000 base units).
        #[arg(value_parser = parse_tokens)]
        amount: u64,
    },
    /// Move tokens from your balance to your reserve, the guarantee behind your deposit.
    Reserve {
        #[arg(value_parser = parse_tokens)]
        amount: u64,
    },
    /// Start the wait after which deposit and reserve can be withdrawn.
    Unlock,
    /// Take deposit and reserve back into your balance once the unlock wait is over.
    Withdraw,
    /// Send tokens from your balance to another account.
    Transfer {
        #[arg(value_parser = parse_id)]
        to: PublicId,
        #[arg(value_parser = parse_tokens)]
        amount: u64,
    },
    /// Bond, delegate or unbond stake, or withdraw unbonded stake.
    #[command(subcommand)]
    Stake(StakeCommand),
    /// The service infrastructure pool: its figures, mining weight bought from it, and proposals to pay
    /// from it and votes on them.
    #[command(subcommand)]
    Sip(SipCommand),
}

#[derive(Debug, Subcommand)]
enum SipCommand {
    /// Pay tokens into the SIP for mining weight on a worker (your own id by default). The weight
    /// raises the worker's share of jobs like stake does, and bleeds away each round.
    Buy {
        #[arg(value_parser = parse_tokens)]
        amount: u64,
        /// The worker the weight goes to (64 hex digits); it must have the minimum stake bonded.
        #[arg(long, value_parser = parse_id)]
        worker: Option<PublicId>,
        /// Most base units to pay per unit of weight, up to 6 decimals (1.05); refused above it.
        #[arg(long, value_parser = parse_tokens)]
        max_price: Option<u64>,
    },
    /// Show the SIP's balance, its inflows by source, the weight outstanding and a price quote.
    Status {
        /// Rounds of inflows to list, back from the current one.
        #[arg(long, default_value_t = 10)]
        rounds: u64,
        /// Quote the weight this many tokens buy now.
        #[arg(long, value_parser = parse_tokens, default_value = "1")]
        quote: u64,
    },
    /// Propose a payment from the SIP; locks the proposal bond, returned if the vote reaches quorum.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["pay", "support"])))]
    Propose {
        /// Pay ID (an account) AMOUNT tokens.
        #[arg(long, num_args = 2, value_names = ["ID", "AMOUNT"])]
        pay: Option<Vec<String>>,
        /// Share AMOUNT tokens among operators by their verified work over --window rounds.
        #[arg(long, value_parser = parse_tokens, value_name = "AMOUNT")]
        support: Option<u64>,
        /// Rounds of verified work an operator-support payment looks back over.
        #[arg(long, default_value_t = 1440, requires = "support")]
        window: u64,
        /// What the payment is for (at most 512 bytes).
        #[arg(long)]
        reason: String,
    },
    /// Vote on a proposal with the stake you had bonded or delegated at its snapshot.
    Vote {
        id: u64,
        /// yes, no or abstain.
        choice: VoteChoice,
    },
    /// List the proposals with their tallies and outcomes, or one of them with its payments.
    Proposals { id: Option<u64> },
}

#[derive(Debug, Subcommand)]
enum StakeCommand {
    /// Bond tokens to yourself as a worker (run with the worker's key file).
    Bond {
        #[arg(value_parser = parse_tokens)]
        amount: u64,
    },
    /// Delegate tokens to a worker.
    Delegate {
        #[arg(value_parser = parse_id)]
        worker: PublicId,
        #[arg(value_parser = parse_tokens)]
        amount: u64,
    },
    /// Start unbonding stake from a worker (your own id for self-stake).
    Unbond {
        #[arg(value_parser = parse_id)]
        worker: PublicId,
        #[arg(value_parser = parse_tokens)]
        amount: u64,
    },
    /// Take released unbonded stake back into your balance.
    Withdraw,
    /// Send a share (0% to 100%) of your hosting rewards and transcode ticket redemptions to the
    /// capacity fund from the next round on; 0% opts out.
    Redirect {
        #[arg(value_parser = parse_share)]
        share: u32,
    },
}

#[derive(Debug, Subcommand)]
enum CollectiveCommand {
    /// Create a collective owned by your key.
    Create {
        #[arg(value_parser = parse_collective)]
        name: String,
        /// Tokens a member locks to join.
        #[arg(long, value_parser = parse_tokens, default_value = "0")]
        access_stake: u64,
        /// Base units per byte beyond a member's free bytes of a round.
        #[arg(long, default_value_t = 0)]
        price_per_byte: u64,
        /// Bytes each member fetches free per ledger round.
        #[arg(long, default_value_t = 1 << 30)]
        free_bytes: u64,
        /// Copies the network keeps of each of its blobs (0: the coordinator's default).
        #[arg(long, default_value_t = 0)]
        replicas: u32,
    },
    /// Add blobs stored for the collective (`dualrig put --collective NAME`); owner only.
    Add {
        #[arg(value_parser = parse_collective)]
        name: String,
        #[arg(required = true, value_parser = dualrig_client::parse_root)]
        roots: Vec<[u8; 32]>,
    },
    /// Join: locks the collective's access stake from your balance.
    Join {
        #[arg(value_parser = parse_collective)]
        name: String,
    },
    /// Leave: access ends now; the stake comes back after the unbonding rounds
    /// (`dualrig stake withdraw`).
    Leave {
        #[arg(value_parser = parse_collective)]
        name: String,
    },
    /// List the collectives, or one collective's rules and blobs.
    Ls {
        #[arg(value_parser = parse_collective)]
        name: Option<String>,
    },
}

fn parse_collective(text: &str) -> Result<String, String> {
    dualrig_proto::access::check_name(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

/// The key a Get signs with: `--key` (or `DUALRIG_KEY`) when given, else the default key file when
/// it exists; none otherwise.
fn get_key(path: Option<PathBuf>) -> anyhow::Result<Option<Identity>> {
    if path.is_some() {
        return load_key(path).map(Some);
    }
    let default = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".dualrig").join("client.key"));
    match default {
        Some(p) if p.exists() => load_key(Some(p)).map(Some),
        _ => Ok(None),
    }
}

fn print_coordinators(list: &dualrig_proto::v1::ListCoordinatorsResponse) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if list.coordinators.is_empty() {
        println!(
            "no coordinators heard from in the last {}s",
            list.silent_after_secs
        );
    }
    for c in &list.coordinators {
        let mut marks = Vec::new();
        if c.round_clock {
            marks.push("round clock");
        }
        if c.id == list.answered_by {
            marks.push("answered");
        }
        println!(
            "{}  {}  last seen {}s ago  up {}s{}",
            hex::encode(&c.id),
            c.advertise_addr,
            now.saturating_sub(c.last_seen_unix),
            c.last_seen_unix.saturating_sub(c.started_unix),
            if marks.is_empty() {
                String::new()
            } else {
                format!("  [{}]", marks.join(", "))
            }
        );
    }
    if list.round_clock_holder.is_empty() {
        println!("round clock: not taken yet");
    } else if !list.coordinators.iter().any(|c| c.round_clock) {
        println!(
            "round clock: {} (lease ran out at unix time {}; the next coordinator to tick takes it)",
            hex::encode(&list.round_clock_holder),
            list.round_clock_expires_unix
        );
    }
}

fn print_sip(s: &dualrig_proto::v1::SipStatusResponse) {
    println!("round              {}", s.round);
    println!("balance            {}", format_tokens(s.balance));
    println!("weight outstanding {}", s.weight_outstanding);
    println!(
        "curve              T {}  W {}  price {} per unit of weight",
        s.curve_tokens,
        s.curve_weight,
        show_ppm(s.spot_price_ppm)
    );
    println!(
        "bleed              {} a round; one unit of weight counts as {} of stake",
        show_ppm(u64::from(s.weight_bleed_ppm) * 100) + " %",
        show_ppm(u64::from(s.weight_stake_ppm))
    );
    if s.quote_weight > 0 {
        println!(
            "quote              {} tokens buy {} weight at {} a unit",
            format_tokens(s.quote_amount),
            s.quote_weight,
            show_ppm(s.quote_price_ppm)
        );
    } else {
        println!(
            "quote              {} tokens buy no weight now",
            format_tokens(s.quote_amount)
        );
    }
    for t in &s.totals {
        let amount = if t.amount_out > 0 {
            format!("-{}", format_tokens(t.amount_out))
        } else {
            format_tokens(t.amount_in)
        };
        println!("total {:<12} {amount}", t.source);
    }
    for f in &s.recent {
        let amount = if f.amount_out > 0 {
            format!("-{}", format_tokens(f.amount_out))
        } else {
            format_tokens(f.amount_in)
        };
        println!("round {:<8} {:<12} {amount}", f.round, f.source);
    }
}

/// A figure in millionths (a price per unit of weight, a share) as a decimal: the same six places
/// as an amount of tokens.
fn show_ppm(ppm: u64) -> String {
    format_tokens(ppm)
}

fn print_collective(c: &dualrig_proto::v1::CollectiveInfo) {
    println!(
        "{}  owner {}  access stake {}  free {} B/round  {} per byte beyond  replicas {}  members {}  locked {}  blobs {}",
        c.name,
        hex::encode(&c.owner),
        format_tokens(c.access_stake),
        c.free_bytes_per_round,
        c.price_per_byte,
        c.replicas,
        c.members,
        format_tokens(c.stake_locked),
        c.blob_count
    );
}

/// `START..END`, either side optional.
fn parse_range(text: &str) -> Result<(Option<u64>, Option<u64>), String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("'{text}' is not a range such as 0..1024, 4096.. or ..100"))?;
    let bound = |s: &str| -> Result<Option<u64>, String> {
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse()
                .map(Some)
                .map_err(|e| format!("'{s}' in range '{text}' is not a byte offset: {e}"))
        }
    };
    let (start, end) = (bound(start)?, bound(end)?);
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(format!("range '{text}' ends before it starts"));
    }
    Ok((start, end))
}

/// A share as a percentage (`50%`, `12.5%`, `0`) in parts per million.
fn parse_share(text: &str) -> Result<u32, String> {
    let number = text.trim().trim_end_matches('%');
    let bad = || format!("'{text}' is not a share from 0% to 100% (such as 50% or 12.5%)");
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || frac.len() > 4 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let frac: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<4}").parse().map_err(|_| bad())?
    };
    let ppm = whole
        .checked_mul(10_000)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)?;
    if ppm > 1_000_000 {
        return Err(format!("{text} is above 100%"));
    }
    Ok(ppm)
}

fn print_proposal(p: &dualrig_proto::v1::ProposalInfo) {
    let what = if p.kind == "pay" {
        format!(
            "pay {} to {}",
            format_tokens(p.amount),
            hex::encode(&p.payee)
        )
    } else {
        format!(
            "share {} among operators by work over {} rounds",
            format_tokens(p.amount),
            p.window_rounds
        )
    };
    println!(
        "#{}  {}  {what}  votes rounds {}..{}  yes {}  no {}  abstain {} of {} staked  bond {}{}",
        p.id,
        p.state,
        p.vote_start,
        p.vote_end,
        format_tokens(p.yes),
        format_tokens(p.no),
        format_tokens(p.abstain),
        format_tokens(p.total_stake),
        format_tokens(p.bond),
        if p.bond_locked > 0 { " (locked)" } else { "" },
    );
    println!("  reason: {}", p.reason);
    if !p.outcome.is_empty() {
        println!("  outcome (round {}): {}", p.tallied_round, p.outcome);
    }
}

fn parse_id(text: &str) -> Result<PublicId, String> {
    let bytes = hex::decode(text)
        .map_err(|e| format!("'{text}' is not an account id (64 hex digits): {e}"))?;
    PublicId::from_slice("account id", &bytes).map_err(|e| e.to_string())
}

fn load_key(path: Option<PathBuf>) -> anyhow::Result<Identity> {
    let path = match path {
        Some(p) => p,
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".dualrig").join("client.key"))
            .context("HOME is not set; pass --key PATH")?,
    };
    Identity::load_or_create(&path).with_context(|| format!("key file {}", path.display()))
}

/// Signs and sends one ledger operation, then says what it did.
async fn execute(cli_url: &str, key: Option<PathBuf>, operation: Operation) -> anyhow::Result<()> {
    let identity = load_key(key)?;
    let client = DualrigClient::connect(cli_url).await?;
    let receipt = client.execute(&identity, operation).await?;
    print!("done in round {} (nonce {})", receipt.round, receipt.nonce);
    if receipt.amount > 0 {
        print!(
            "; {} tokens back in the balance",
            format_tokens(receipt.amount)
        );
    }
    println!();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Transcode {
            input,
            out,
            profiles,
            jobs,
            segment_secs,
            pay,
            max_price,
            retry_secs,
            fresh,
        } => {
            let profiles = Profile::parse_list(&profiles)?;
            anyhow::ensure!(
                segment_secs > 0.0 && segment_secs.is_finite(),
                "--segment-secs must be a positive number of seconds"
            );
            let client = DualrigClient::connect(&cli.coordinator).await?;
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:40}] {pos}/{len} segments ({elapsed})",
                )
                .context("progress template")?
                .progress_chars("=> "),
            );
            bar.set_message(format!("transcoding {}", input.display()));
            let payment = if pay || max_price.is_some() {
                Some(dualrig_client::Payment::new(load_key(cli.key)?, max_price))
            } else {
                None
            };
            let options = LadderOptions {
                jobs,
                segment_secs,
                payment,
                retry_for: std::time::Duration::from_secs(retry_secs),
                fresh,
            };
            let summary = dualrig_client::transcode_file(
                &client,
                &input,
                &out,
                &profiles,
                &options,
                |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                },
            )
            .await;
            bar.finish_and_clear();
            let summary = summary?;
            println!(
                "{} segments x {} renditions -> {}",
                summary.segments,
                summary.renditions.len(),
                summary.master_playlist.display()
            );
            if summary.kept > 0 {
                println!(
                    "  kept {} of {} segments from an earlier run in {}",
                    summary.kept,
                    summary.segments,
                    out.display()
                );
            }
            if summary.redone > 0 {
                println!(
                    "  {} recorded segments were missing or changed on disk and were made again",
                    summary.redone
                );
            }
            for (worker, n) in &summary.per_worker {
                println!("  worker {}: {n} segments", &worker[..worker.len().min(16)]);
            }
            if summary.retried > 0 {
                println!("  {} segments needed another worker", summary.retried);
            }
            if summary.resent > 0 {
                println!(
                    "  {} segments were sent again after the coordinator was unreachable or busy",
                    summary.resent
                );
            }
        }
        Command::Put {
            files,
            replicas,
            collective,
        } => {
            let client = DualrigClient::connect(&cli.coordinator).await?;
            for file in files {
                let put = client
                    .put_file_for(&file, replicas, collective.as_deref())
                    .await
                    .with_context(|| format!("storing {}", file.display()))?;
                println!("{}  {}", put.root.to_hex(), file.display());
                let holders: Vec<String> = put.holders.iter().map(|h| h.short()).collect();
                eprintln!("  {} bytes on {}", put.size, holders.join(", "));
            }
        }
        Command::Get {
            root,
            out,
            range,
            pay,
            max_price,
            anonymous,
        } => {
            let client = DualrigClient::connect(&cli.coordinator).await?;
            let (start, end) = range.unwrap_or((None, None));
            let start = start.unwrap_or(0);
            let got = if pay || max_price.is_some() {
                let payment = dualrig_client::Payment::new(load_key(cli.key)?, max_price);
                client
                    .get_to_file_paid(root, start, end, &out, &payment)
                    .await?
            } else {
                let identity = if anonymous { None } else { get_key(cli.key)? };
                client
                    .get_to_file_as(root, start, end, &out, identity.as_ref())
                    .await?
            };
            eprintln!(
                "{} bytes ({}..{} of {}) verified -> {}",
                got.end - got.start,
                got.start,
                got.end,
                got.size,
                out.display()
            );
            for holder in got.skipped {
                eprintln!("  skipped holder {} (bad bytes or failure)", holder.short());
            }
        }
        Command::Ls => {
            let client = DualrigClient::connect(&cli.coordinator).await?;
            let blobs = client.list_blobs().await?;
            if blobs.is_empty() {
                println!("no blobs stored");
            }
            for blob in blobs {
                let holders: Vec<String> = blob
                    .holders
                    .iter()
                    .map(|h| hex::encode(&h[..h.len().min(8)]))
                    .collect();
                // ×1 when the coordinator says nothing of surge pricing.
                let surge = f64::from(blob.surge_multiplier_ppm.max(1_000_000)) / 1e6;
                println!(
                    "{}  {:>14}  {}/{}  x{surge:.2}  {}",
                    hex::encode(&blob.root),
                    blob.size,
                    blob.holders.len(),
                    blob.replicas,
                    holders.join(",")
                );
            }
        }
        Command::Coordinators => {
            let client = DualrigClient::connect(&cli.coordinator).await?;
            print_coordinators(&client.list_coordinators().await?);
        }
        Command::Workers => {
            let client = DualrigClient::connect(&cli.coordinator).await?;
            let workers = client.list_workers().await?;
            if workers.is_empty() {
                println!("no workers connected");
            }
            for w in workers {
                let caps = w.capabilities.unwrap_or_default();
                let via = if w.attached_to.is_empty() {
                    String::new()
                } else {
                    format!(" via={}", hex::encode(&w.attached_to))
                };
                println!(
                    "{}  encoder={} sessions={} free={} done={} failed={} hasher={}{via}",
                    hex::encode(&w.worker_id),
                    caps.selected_encoder,
                    caps.sessions,
                    w.free_sessions,
                    w.jobs_done,
                    w.jobs_failed,
                    caps.hasher
                );
            }
        }
        Command::Account { id } => {
            let id = match id {
                Some(id) => id,
                None => load_key(cli.key)?.id(),
            };
            let client = DualrigClient::connect(&cli.coordinator).await?;
            let info = client.account(id).await?;
            println!("account   {id}");
            println!("round     {}", info.round);
            println!("balance   {}", format_tokens(info.balance));
            println!("deposit   {}", format_tokens(info.deposit));
            println!("reserve   {}", format_tokens(info.reserve));
            if info.withdraw_round > 0 {
                println!("unlocking: may withdraw at round {}", info.withdraw_round);
            }
            println!("self-bond {}", format_tokens(info.bonded_to_self));
            println!("stake     {} (as a worker)", format_tokens(info.stake));
            if info.mining_weight > 0 {
                println!("mining weight {} (bought from the SIP)", info.mining_weight);
            }
            for u in &info.unbonding {
                println!(
                    "unbonding {} from {} at round {}",
                    format_tokens(u.amount),
                    hex::encode(&u.worker),
                    u.release_round
                );
            }
            if info.suspended_until > 0 {
                println!("suspended through round {}", info.suspended_until);
            }
            if info.redirect_ppm > 0 || info.redirect_next_ppm > 0 || info.redirected > 0 {
                println!(
                    "redirect  {}% to the capacity fund ({}% from next round; {} so far)",
                    f64::from(info.redirect_ppm) / 10_000.0,
                    f64::from(info.redirect_next_ppm) / 10_000.0,
                    format_tokens(info.redirected)
                );
            }
            println!("nonce     {}", info.nonce);
        }
        Command::Deposit { amount } => {
            execute(&cli.coordinator, cli.key, Operation::Deposit { amount }).await?
        }
        Command::Reserve { amount } => {
            execute(&cli.coordinator, cli.key, Operation::Reserve { amount }).await?
        }
        Command::Unlock => execute(&cli.coordinator, cli.key, Operation::Unlock).await?,
        Command::Withdraw => execute(&cli.coordinator, cli.key, Operation::Withdraw).await?,
        Command::Transfer { to, amount } => {
            execute(
                &cli.coordinator,
                cli.key,
                Operation::Transfer { to, amount },
            )
            .await?
        }
        Command::Collective(command) => {
            let operations = match command {
                CollectiveCommand::Create {
                    name,
                    access_stake,
                    price_per_byte,
                    free_bytes,
                    replicas,
                } => vec![Operation::CreateCollective {
                    name,
                    rules: CollectiveRules {
                        access_stake,
                        price_per_byte,
                        free_bytes_per_round: free_bytes,
                        replicas,
                    },
                }],
                CollectiveCommand::Add { name, roots } => roots
                    .into_iter()
                    .map(|root| Operation::AddToCollective {
                        name: name.clone(),
                        root,
                    })
                    .collect(),
                CollectiveCommand::Join { name } => vec![Operation::JoinCollective { name }],
                CollectiveCommand::Leave { name } => vec![Operation::LeaveCollective { name }],
                CollectiveCommand::Ls { name } => {
                    let client = DualrigClient::connect(&cli.coordinator).await?;
                    match name {
                        Some(name) => {
                            let (info, roots) = client.collective(&name).await?;
                            print_collective(&info);
                            for root in roots {
                                println!("  {}", hex::encode(root));
                            }
                        }
                        None => {
                            let all = client.list_collectives().await?;
                            if all.is_empty() {
                                eprintln!("no collectives yet");
                            }
                            for c in &all {
                                print_collective(c);
                            }
                        }
                    }
                    return Ok(());
                }
            };
            for operation in operations {
                execute(&cli.coordinator, cli.key.clone(), operation).await?;
            }
        }
        Command::Stake(stake) => {
            let operation = match stake {
                StakeCommand::Bond { amount } => Operation::Bond { amount },
                StakeCommand::Delegate { worker, amount } => Operation::Delegate { worker, amount },
                StakeCommand::Unbond { worker, amount } => Operation::Unbond { worker, amount },
                StakeCommand::Withdraw => Operation::WithdrawUnbonded,
                StakeCommand::Redirect { share } => Operation::SetRedirect { share_ppm: share },
            };
            execute(&cli.coordinator, cli.key, operation).await?
        }
        Command::Sip(command) => match command {
            SipCommand::Status { rounds, quote } => {
                let client = DualrigClient::connect(&cli.coordinator).await?;
                print_sip(&client.sip_status(rounds, quote).await?);
            }
            SipCommand::Buy {
                amount,
                worker,
                max_price,
            } => {
                let identity = load_key(cli.key)?;
                let worker = worker.unwrap_or_else(|| identity.id());
                let client = DualrigClient::connect(&cli.coordinator).await?;
                let receipt = client
                    .execute(
                        &identity,
                        Operation::BuyWeight {
                            worker,
                            amount,
                            max_price_ppm: max_price.unwrap_or(u64::MAX),
                        },
                    )
                    .await?;
                println!(
                    "bought {} mining weight for {worker} in round {} (nonce {})",
                    receipt.amount, receipt.round, receipt.nonce
                );
            }
            SipCommand::Propose {
                pay,
                support,
                window,
                reason,
            } => {
                let kind = match (pay, support) {
                    (Some(pay), _) => ProposalKind::Pay {
                        to: parse_id(&pay[0]).map_err(anyhow::Error::msg)?,
                        amount: parse_tokens(&pay[1]).map_err(anyhow::Error::msg)?,
                    },
                    (None, Some(amount)) => ProposalKind::OperatorSupport {
                        amount,
                        window_rounds: window,
                    },
                    (None, None) => {
                        anyhow::bail!("say what to propose: --pay ID AMOUNT or --support AMOUNT")
                    }
                };
                let identity = load_key(cli.key)?;
                let client = DualrigClient::connect(&cli.coordinator).await?;
                let receipt = client
                    .execute(&identity, Operation::Propose { kind, reason })
                    .await?;
                println!(
                    "proposal #{} recorded in round {}; `dualrig sip proposals {}` shows its vote",
                    receipt.proposal, receipt.round, receipt.proposal
                );
            }
            SipCommand::Vote { id, choice } => {
                let identity = load_key(cli.key)?;
                let client = DualrigClient::connect(&cli.coordinator).await?;
                let receipt = client
                    .execute(
                        &identity,
                        Operation::Vote {
                            proposal: id,
                            choice,
                        },
                    )
                    .await?;
                println!(
                    "voted {} on proposal #{id} with {} tokens of stake (round {})",
                    choice.name(),
                    format_tokens(receipt.vote_weight),
                    receipt.round
                );
            }
            SipCommand::Proposals { id } => {
                let client = DualrigClient::connect(&cli.coordinator).await?;
                match id {
                    Some(id) => {
                        let p = client.proposal(id).await?;
                        print_proposal(&p);
                        for pay in &p.payments {
                            println!(
                                "  paid {} to {} (work {})",
                                format_tokens(pay.amount),
                                hex::encode(&pay.payee),
                                pay.work
                            );
                        }
                    }
                    None => {
                        let (all, last) = client.list_proposals().await?;
                        println!(
                            "round {}  SIP {}  capacity fund {}  bond {}  quorum {}%  approval over {}%",
                            last.round,
                            format_tokens(last.sip),
                            format_tokens(last.capacity_fund),
                            format_tokens(last.proposal_bond),
                            f64::from(last.quorum_ppm) / 10_000.0,
                            f64::from(last.approval_ppm) / 10_000.0
                        );
                        if all.is_empty() {
                            eprintln!("no proposals yet");
                        }
                        for p in &all {
                            print_proposal(p);
                        }
                    }
                }
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_and_subcommands_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ledger_commands_parse_tokens_and_ids() {
        let worker_id = Identity::from_secret([5; 32]).id();
        let id = worker_id.to_hex();
        let cli =
            Cli::try_parse_from(["dualrig", "stake", "delegate", &id, "1.5"]).expect("parses");
        match cli.command {
            Command::Stake(StakeCommand::Delegate { worker, amount }) => {
                assert_eq!(worker, worker_id);
                assert_eq!(amount, 1_500_000);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["dualrig", "deposit", "1.0000001"]).is_err());
        assert!(Cli::try_parse_from(["dualrig", "deposit", "99999999999999999"]).is_err());
        assert!(Cli::try_parse_from(["dualrig", "transfer", "abc", "1"]).is_err());
        assert_eq!(parse_share("50%"), Ok(500_000));
        assert_eq!(parse_share("12.5%"), Ok(125_000));
        assert_eq!(parse_share("0"), Ok(0));
        assert_eq!(parse_share("100%"), Ok(1_000_000));
        for bad in ["100.01%", "-1%", "abc", "%", "1.23456%", "5000000000%"] {
            assert!(parse_share(bad).is_err(), "{bad}");
        }
        let cli = Cli::try_parse_from(["dualrig", "sip", "vote", "3", "abstain"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Sip(SipCommand::Vote {
                id: 3,
                choice: VoteChoice::Abstain
            })
        ));
        assert!(Cli::try_parse_from(["dualrig", "sip", "vote", "3", "maybe"]).is_err());
        assert!(Cli::try_parse_from(["dualrig", "sip", "propose", "--reason", "r"]).is_err());
        let cli = Cli::try_parse_from([
            "dualrig", "sip", "propose", "--pay", &id, "2", "--reason", "r",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Sip(SipCommand::Propose { pay: Some(_), .. })
        ));
        // 32 bytes, but not a point on the curve.
        let not_a_key = "ab".repeat(32);
        assert!(Cli::try_parse_from(["dualrig", "transfer", &not_a_key, "1"]).is_err());
    }

    #[test]
    fn sip_buy_takes_tokens_a_worker_and_a_decimal_price() {
        let worker_id = Identity::from_secret([5; 32]).id();
        let id = worker_id.to_hex();
        let cli = Cli::try_parse_from([
            "dualrig",
            "sip",
            "buy",
            "2.5",
            "--worker",
            &id,
            "--max-price",
            "1.05",
        ])
        .expect("parses");
        match cli.command {
            Command::Sip(SipCommand::Buy {
                amount,
                worker,
                max_price,
            }) => {
                assert_eq!(amount, 2_500_000);
                assert_eq!(worker, Some(worker_id));
                assert_eq!(max_price, Some(1_050_000));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["dualrig", "sip", "buy", "1", "--max-price", "x"]).is_err());
        let not_a_key = "ab".repeat(32);
        assert!(
            Cli::try_parse_from(["dualrig", "sip", "buy", "1", "--worker", &not_a_key]).is_err()
        );
        assert_eq!(show_ppm(1_111_112), "1.111112");
        assert_eq!(show_ppm(2_000_000), "2");
    }
}
