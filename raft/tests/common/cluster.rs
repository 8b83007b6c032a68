//! An in-process openraft cluster on ringlog, shared by `examples/cluster.rs` and
//! `tests/cluster.rs` (each includes this file with `#[path]`).
//!
//! Every node has its own ringlog database in its own directory, holding its [`LogStore`] (keys
//! `log/`) and its [`StateMachine`] (keys `sm/`). The nodes talk through a [`Router`] that hands
//! each RPC to the target node's `Raft` handle (append entries, vote, pre-vote, full snapshot,
//! transfer leader), and that can disconnect a node: RPCs to or from it then fail as
//! `Unreachable`.
//!
//! [`scenario`] is the walk-through both run: initialize, write, read everywhere, kill a node,
//! write, restart it from its directory, watch it catch up by log replication; then kill it
//! again, write, have the leader snapshot and purge its log, restart it and watch it catch up by
//! installing the snapshot. Every check returns an error rather than panicking; every wait is on
//! openraft's metrics, bounded by [`WAIT`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    ClientWriteError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, ClientWriteResponse, SnapshotResponse,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, Config, LogIdOptionExt, OptionalSend, RaftMetrics, ServerState};
use ringlog_db::{Db, Options};
use ringlog_openraft::{LogStore, Request, StateMachine, TypeConfig};

/// A node id.
pub type NodeId = u64;

/// A node's Raft handle.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// What a check failure or an error of the harness is.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The harness's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The bound of every wait (generous: the cluster may share a small, busy machine).
pub const WAIT: Duration = Duration::from_secs(30);

/// Returns an error made of the format arguments unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+).into());
        }
    };
}

/// The key prefix of each node's log store in its database.
pub const LOG_PREFIX: &[u8] = b"log/";

/// The key prefix of each node's state machine in its database.
pub const SM_PREFIX: &[u8] = b"sm/";

/// The Raft configuration of every node.
pub fn config() -> Result<Arc<Config>> {
    let c = Config {
        cluster_name: "ringlog-cluster-example".to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 300,
        election_timeout_max: 600,
        // A snapshot is installed in one call, its data written to ringlog and synced: give it
        // time on a slow disk.
        install_snapshot_timeout: 10_000,
        // A restarted node that is behind does not raise its term (and so depose the leader)
        // when its election timer fires before the leader reaches it.
        enable_pre_vote: Some(true),
        ..Default::default()
    };
    Ok(Arc::new(c.validate()?))
}

#[derive(Default)]
struct Routes {
    /// The running nodes.
    nodes: BTreeMap<NodeId, Raft>,
    /// The nodes whose RPCs, in and out, fail.
    disconnected: BTreeSet<NodeId>,
}

/// The in-process network: forwards each RPC to the target node's `Raft` handle.
#[derive(Clone, Default)]
pub struct Router {
    routes: Arc<Mutex<Routes>>,
}

impl Router {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        // A panic elsewhere while holding the lock leaves the map consistent: go on.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes node `id` reachable at `raft`.
    pub fn register(&self, id: NodeId, raft: Raft) {
        self.routes().nodes.insert(id, raft);
    }

    /// Makes node `id` unreachable for good (until registered again); returns its handle.
    pub fn unregister(&self, id: NodeId) -> Option<Raft> {
        self.routes().nodes.remove(&id)
    }

    /// Cuts node `id` off: every RPC to or from it fails as `Unreachable`.
    pub fn disconnect(&self, id: NodeId) {
        self.routes().disconnected.insert(id);
    }

    /// Undoes [`Router::disconnect`].
    pub fn connect(&self, id: NodeId) {
        self.routes().disconnected.remove(&id);
    }

    /// The handle an RPC from `from` to `to` is delivered to.
    fn route(&self, from: NodeId, to: NodeId) -> Result<Raft, Unreachable<TypeConfig>> {
        let r = self.routes();
        for id in [from, to] {
            if r.disconnected.contains(&id) {
                return Err(Unreachable::from_string(format!(
                    "node {id} is disconnected ({from} -> {to})"
                )));
            }
        }
        r.nodes
            .get(&to)
            .cloned()
            .ok_or_else(|| Unreachable::from_string(format!("node {to} is not running")))
    }
}

/// Node `from`'s network factory: connections from it through the router.
pub struct Network {
    router: Router,
    from: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            router: self.router.clone(),
            from: self.from,
            to: target,
        }
    }
}

/// A connection from one node to another through the router.
pub struct Connection {
    router: Router,
    from: NodeId,
    to: NodeId,
}

impl Connection {
    fn target(&self) -> Result<Raft, Unreachable<TypeConfig>> {
        self.router.route(self.from, self.to)
    }

    /// The target's failure (it stopped) as the sender sees it.
    fn failed(&self, e: impl std::fmt::Display) -> Unreachable<TypeConfig> {
        Unreachable::from_string(format!("node {}: {e}", self.to))
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.target()?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| self.failed(e).into())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.target()?;
        raft.vote(rpc).await.map_err(|e| self.failed(e).into())
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.target()?;
        raft.pre_vote(rpc).await.map_err(|e| self.failed(e).into())
    }

    async fn full_snapshot(
        &mut self,
        vote: openraft::alias::VoteOf<TypeConfig>,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, Cursor<Vec<u8>>>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let raft = self.target()?;
        raft.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| self.failed(e).into())
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.target()?;
        raft.handle_transfer_leader(req)
            .await
            .map_err(|e| self.failed(e).into())
    }
}

/// A running node.
pub struct Node {
    /// Its Raft handle.
    pub raft: Raft,
    /// A handle on its state machine, for reads.
    pub sm: StateMachine,
    /// Its database.
    pub db: Arc<Db>,
}

/// A cluster of nodes in one process, each with its database in its own directory.
pub struct Cluster {
    router: Router,
    config: Arc<Config>,
    dirs: BTreeMap<NodeId, PathBuf>,
    nodes: BTreeMap<NodeId, Node>,
}

impl Cluster {
    /// Starts nodes `ids`, each with a fresh database in `root`/node-`id`.
    pub async fn start(root: &Path, ids: &[NodeId]) -> Result<Cluster> {
        let mut c = Cluster {
            router: Router::default(),
            config: config()?,
            dirs: BTreeMap::new(),
            nodes: BTreeMap::new(),
        };
        for &id in ids {
            let dir = root.join(format!("node-{id}"));
            ensure!(
                !dir.exists(),
                "{} exists: the cluster wants fresh directories",
                dir.display()
            );
            c.dirs.insert(id, dir);
            c.open(id).await?;
        }
        Ok(c)
    }

    /// Opens (or reopens) node `id` from its directory: database, log store, state machine and
    /// a new Raft with the same id, reachable through the router.
    async fn open(&mut self, id: NodeId) -> Result<()> {
        ensure!(
            !self.nodes.contains_key(&id),
            "node {id} is running already"
        );
        let dir = self.dir(id)?;
        let db = Arc::new(
            Db::open(&dir, Options::default())
                .map_err(|e| format!("opening node {id}'s database in {}: {e}", dir.display()))?,
        );
        let log = LogStore::<TypeConfig>::new(db.clone(), LOG_PREFIX)?;
        let sm = StateMachine::new(db.clone(), SM_PREFIX)?;
        let network = Network {
            router: self.router.clone(),
            from: id,
        };
        let raft = Raft::new(id, self.config.clone(), network, log, sm.clone()).await?;
        self.router.register(id, raft.clone());
        self.router.connect(id);
        self.nodes.insert(id, Node { raft, sm, db });
        Ok(())
    }

    /// Node `id`'s directory.
    pub fn dir(&self, id: NodeId) -> Result<PathBuf> {
        Ok(self
            .dirs
            .get(&id)
            .ok_or_else(|| format!("no node {id}"))?
            .clone())
    }

    /// Running node `id`.
    pub fn node(&self, id: NodeId) -> Result<&Node> {
        Ok(self
            .nodes
            .get(&id)
            .ok_or_else(|| format!("node {id} is not running"))?)
    }

    /// The running nodes' ids.
    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Initializes the cluster's membership (every node, as voters) through node `via`.
    pub async fn initialize(&self, via: NodeId) -> Result<()> {
        let members: BTreeMap<NodeId, BasicNode> = self
            .dirs
            .keys()
            .map(|&id| (id, BasicNode::new(format!("in-process node {id}"))))
            .collect();
        self.node(via)?.raft.initialize(members).await?;
        Ok(())
    }

    /// Node `id`'s latest metrics.
    pub fn metrics(&self, id: NodeId) -> Result<RaftMetrics<TypeConfig>> {
        use openraft::async_runtime::WatchReceiver;
        Ok(self.node(id)?.raft.metrics().borrow_watched().clone())
    }

    /// Waits until every running node follows one running leader, which knows it leads; returns
    /// it.
    pub async fn leader(&self) -> Result<NodeId> {
        let deadline = Instant::now() + WAIT;
        let step = Duration::from_secs(5);
        let running = self.running();
        let first = *running.first().ok_or("no node is running")?;
        loop {
            ensure!(
                Instant::now() < deadline,
                "the running nodes {running:?} did not agree on a leader within {WAIT:?}"
            );
            let m = self
                .node(first)?
                .raft
                .wait(Some(step))
                .metrics(
                    |m| m.current_leader.is_some_and(|l| running.contains(&l)),
                    "a running leader",
                )
                .await;
            let Some(leader) = m.ok().and_then(|m| m.current_leader) else {
                continue;
            };
            let mut agreed = self
                .node(leader)?
                .raft
                .wait(Some(step))
                .metrics(
                    |m| m.state == ServerState::Leader && m.current_leader == Some(leader),
                    "leading",
                )
                .await
                .is_ok();
            for &id in &running {
                if !agreed {
                    break;
                }
                agreed = self
                    .node(id)?
                    .raft
                    .wait(Some(step))
                    .current_leader(leader, "following the leader")
                    .await
                    .is_ok();
            }
            if agreed {
                return Ok(leader);
            }
        }
    }

    /// Writes `req` through the leader (following `ForwardToLeader` if leadership moves);
    /// returns openraft's response once it is committed and applied on the leader.
    pub async fn write(&self, req: Request) -> Result<ClientWriteResponse<TypeConfig>> {
        let deadline = Instant::now() + WAIT;
        let mut target = self.leader().await?;
        loop {
            let raft = self.node(target)?.raft.clone();
            match raft.client_write(req.clone()).await {
                Ok(r) => return Ok(r),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))
                    if Instant::now() < deadline =>
                {
                    target = match f.leader_id {
                        Some(l) if self.nodes.contains_key(&l) => l,
                        _ => self.leader().await?,
                    };
                }
                Err(e) => return Err(format!("writing `{req}` through node {target}: {e}").into()),
            }
        }
    }

    /// Waits until node `id` has applied the log up to `index`.
    pub async fn wait_applied(&self, id: NodeId, index: u64) -> Result<RaftMetrics<TypeConfig>> {
        Ok(self
            .node(id)?
            .raft
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), format!("node {id} applies up to {index}"))
            .await?)
    }

    /// Checks that node `id`'s state machine holds exactly `want` for its keys (`None`: absent).
    pub fn check_reads(&self, id: NodeId, want: &BTreeMap<String, Option<String>>) -> Result<()> {
        let sm = &self.node(id)?.sm;
        for (k, v) in want {
            let got = sm.get(k)?;
            ensure!(
                &got == v,
                "node {id} reads {k} = {got:?}, but {v:?} was written"
            );
        }
        Ok(())
    }

    /// Kills node `id` the clean way: cuts it off the network, shuts its Raft down, waits until
    /// nothing holds its database any more (openraft's tasks and the log store's flusher thread
    /// let go of it shortly after the shutdown) and closes it.
    pub async fn kill(&mut self, id: NodeId) -> Result<()> {
        let node = self
            .nodes
            .remove(&id)
            .ok_or_else(|| format!("node {id} is not running"))?;
        self.router.disconnect(id);
        self.router.unregister(id);
        node.raft
            .shutdown()
            .await
            .map_err(|e| format!("shutting node {id} down: {e}"))?;
        let Node { raft, sm, db } = node;
        drop(raft);
        drop(sm);
        let deadline = Instant::now() + WAIT;
        let mut db = db;
        let db = loop {
            match Arc::try_unwrap(db) {
                Ok(db) => break db,
                Err(shared) => {
                    ensure!(
                        Instant::now() < deadline,
                        "node {id}'s database is still held {} times {WAIT:?} after its shutdown",
                        Arc::strong_count(&shared) - 1
                    );
                    db = shared;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        db.close()
            .map_err(|e| format!("closing node {id}'s database: {e}"))?;
        Ok(())
    }

    /// Waits until node `id` applied up to `index`, has it build a snapshot and purge its log up
    /// to the snapshot; returns the snapshot's index.
    pub async fn snapshot_and_purge(&self, id: NodeId, index: u64) -> Result<u64> {
        self.wait_applied(id, index).await?;
        let raft = &self.node(id)?.raft;
        raft.trigger().snapshot().await?;
        let m = raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.snapshot.index() >= Some(index),
                format!("node {id} builds a snapshot covering {index}"),
            )
            .await?;
        let snap = m.snapshot.index().ok_or("no snapshot")?;
        raft.trigger().purge_log(snap).await?;
        raft.wait(Some(WAIT))
            .metrics(
                |m| m.purged.index() >= Some(snap),
                format!("node {id} purges its log up to {snap}"),
            )
            .await?;
        Ok(snap)
    }

    /// Restarts node `id` from its directory (it must have been killed).
    pub async fn restart(&mut self, id: NodeId) -> Result<()> {
        self.open(id).await
    }

    /// Shuts every node down and closes the databases.
    pub async fn shutdown(mut self) -> Result<()> {
        for id in self.running() {
            self.kill(id).await?;
        }
        Ok(())
    }
}

/// What [`scenario`] saw, for the test's assertions.
#[derive(Debug)]
pub struct Summary {
    /// The leader of the first phases (the victim is another node).
    pub leader: NodeId,
    /// The node killed and restarted (twice).
    pub victim: NodeId,
    /// Every key written and its final value (`None`: deleted), as every node reads it at the
    /// end.
    pub keys: BTreeMap<String, Option<String>>,
    /// The last log index written.
    pub last_index: u64,
    /// The snapshot the victim installed in the last phase.
    pub installed_snapshot: u64,
}

/// Reopens node `id`'s database alone (no Raft) and counts which of `before` (written before it
/// was killed) and of `after` (written since) its state machine holds; reports its applied log
/// index.
async fn inspect_stopped(
    dir: &Path,
    before: &BTreeMap<String, Option<String>>,
    after: &BTreeMap<String, Option<String>>,
) -> Result<(Option<u64>, usize, usize)> {
    let db = Arc::new(Db::open(dir, Options::default())?);
    let mut sm = StateMachine::new(db.clone(), SM_PREFIX)?;
    let (applied, _) = sm.applied_state().await?;
    let holds = |m: &BTreeMap<String, Option<String>>| -> Result<usize> {
        let mut n = 0;
        for (k, v) in m {
            if &sm.get(k)? == v {
                n += 1;
            }
        }
        Ok(n)
    };
    let (b, a) = (holds(before)?, holds(after)?);
    drop(sm);
    Arc::try_unwrap(db)
        .map_err(|_| "the inspected database is still shared")?
        .close()?;
    Ok((applied.index(), b, a))
}

/// Writes `n` keys `prefix`-0..n through the leader; returns the last log index.
async fn write_keys(
    c: &Cluster,
    prefix: &str,
    n: usize,
    model: &mut BTreeMap<String, Option<String>>,
) -> Result<u64> {
    let mut last = 0;
    for i in 0..n {
        let (key, value) = (format!("{prefix}-{i:02}"), format!("{prefix} value {i}"));
        let r = c
            .write(Request::Set {
                key: key.clone(),
                value: value.clone(),
            })
            .await?;
        last = r.log_id.index();
        model.insert(key, Some(value));
    }
    Ok(last)
}

/// Waits until each of `ids` applied up to `index`, then checks it reads `want`.
async fn check_everywhere(
    c: &Cluster,
    ids: &[NodeId],
    index: u64,
    want: &BTreeMap<String, Option<String>>,
) -> Result<()> {
    for &id in ids {
        c.wait_applied(id, index).await?;
        c.check_reads(id, want)?;
    }
    Ok(())
}

fn list(ids: &[NodeId]) -> String {
    ids.iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The walk-through (see the module documentation), narrated on stdout, in fresh node
/// directories under `root`.
pub async fn scenario(root: &Path) -> Result<Summary> {
    const IDS: [NodeId; 3] = [1, 2, 3];
    println!(
        "three openraft nodes in one process, each on its own ringlog database under {}",
        root.display()
    );
    let mut c = Cluster::start(root, &IDS).await?;
    c.initialize(1).await?;
    let leader = c.leader().await?;
    println!(
        "node 1 initialized the membership {{{}}}; node {leader} leads (term {})",
        list(&IDS),
        c.metrics(leader)?.current_term
    );

    // Phase 1: writes, readable everywhere.
    let mut phase1 = BTreeMap::new();
    let last = write_keys(&c, "alpha", 10, &mut phase1).await?;
    println!("wrote alpha-00..alpha-09 through node {leader}: committed up to log index {last}");
    check_everywhere(&c, &IDS, last, &phase1).await?;
    println!(
        "every node applied up to {last} and reads the 10 keys from its own state machine: nodes {}",
        list(&IDS)
    );

    // Phase 2: kill a follower, write on, restart it; it catches up from the log.
    let victim = *IDS
        .iter()
        .rev()
        .find(|&&id| id != leader)
        .ok_or("no follower")?;
    c.kill(victim).await?;
    println!("killed node {victim}: Raft shut down, database closed");
    let mut phase2 = BTreeMap::new();
    write_keys(&c, "beta", 10, &mut phase2).await?;
    let r = c
        .write(Request::Delete {
            key: "alpha-03".to_string(),
        })
        .await?;
    ensure!(
        r.data.previous.as_deref() == Some("alpha value 3"),
        "deleting alpha-03 answered the previous value {:?}",
        r.data.previous
    );
    phase2.insert("alpha-03".to_string(), None);
    let last = r.log_id.index();
    let alive = c.running();
    let mut all = phase1.clone();
    all.extend(phase2.clone());
    check_everywhere(&c, &alive, last, &all).await?;
    println!(
        "wrote beta-00..beta-09 and deleted alpha-03 without node {victim} (up to index {last}); \
         nodes {} applied them",
        list(&alive)
    );
    let (applied, before, after) = inspect_stopped(&c.dir(victim)?, &phase1, &phase2).await?;
    ensure!(
        before == phase1.len() && after == 0,
        "node {victim}'s stopped state machine holds {before}/{} of the keys written before its \
         kill and {after}/{} of the ones written after",
        phase1.len(),
        phase2.len()
    );
    println!(
        "node {victim}'s database, reopened alone: applied up to {}, holds all {} keys written \
         before the kill and none of the {} changes since",
        applied.map_or("nothing".to_string(), |i| i.to_string()),
        phase1.len(),
        phase2.len()
    );
    let t = Instant::now();
    c.restart(victim).await?;
    check_everywhere(&c, &[victim], last, &all).await?;
    let m = c.metrics(victim)?;
    ensure!(
        m.snapshot.is_none(),
        "node {victim} caught up by a snapshot ({:?}), not by log replication",
        m.snapshot
    );
    println!(
        "restarted node {victim} from its directory: it caught up to index {last} by log \
         replication in {:?} and reads every key (alpha-03 deleted)",
        t.elapsed()
    );

    // Phase 3: kill it again, write on, have every running node snapshot and purge its log:
    // whichever leads when it comes back, the restarted node can only catch up by installing a
    // snapshot.
    c.kill(victim).await?;
    println!("killed node {victim} again");
    let mut phase3 = BTreeMap::new();
    let last = write_keys(&c, "gamma", 10, &mut phase3).await?;
    all.extend(phase3.clone());
    let alive = c.running();
    let mut snaps = Vec::new();
    for &id in &alive {
        snaps.push(c.snapshot_and_purge(id, last).await?);
    }
    println!(
        "wrote gamma-00..gamma-09 (up to index {last}); nodes {} built snapshots at index {} and \
         purged their logs up to them",
        list(&alive),
        list(&snaps)
    );
    let t = Instant::now();
    c.restart(victim).await?;
    check_everywhere(&c, &[victim], last, &all).await?;
    let m = c.metrics(victim)?;
    let installed = m.snapshot.index().ok_or_else(|| {
        format!("node {victim} caught up to {last} without a snapshot, though the log was purged")
    })?;
    ensure!(
        installed >= last,
        "node {victim} installed a snapshot at {installed}, below the last write {last}"
    );
    println!(
        "restarted node {victim}: it installed the snapshot at index {installed} (sent through \
         the router) and caught up to {last} in {:?}; it reads all {} keys",
        t.elapsed(),
        all.len()
    );
    check_everywhere(&c, &c.running(), last, &all).await?;
    c.shutdown().await?;
    println!("all checks passed; every node shut down and its database closed");
    Ok(Summary {
        leader,
        victim,
        keys: all,
        last_index: last,
        installed_snapshot: installed,
    })
}
