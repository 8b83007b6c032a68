//! The in-memory filesystem and its power-loss model, independent of FUSE: a tree of nodes, each
//! regular file holding the bytes reads see (`current`) and the bytes that survive a power cut
//! (`durable`).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo};

/// Inode number of the root directory.
pub(crate) const ROOT: u64 = 1;
/// Block size reported by `stat` and `statfs`.
pub(crate) const BLOCK: u32 = 4096;
/// Largest file the model accepts (writes or truncates past it fail with `EFBIG`): the whole
/// filesystem lives in memory, so a stray huge offset must not become a huge allocation.
pub(crate) const MAX_FILE: u64 = 1 << 32;

/// What the filesystem saw of one regular file: request counts and the state of its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStats {
    /// `FUSE_WRITE` requests (one `write(2)` may become several, one per `max_write` chunk).
    pub writes: u64,
    /// Bytes written by those requests.
    pub bytes_written: u64,
    /// `FUSE_FSYNC` requests without the datasync flag (`fsync(2)`).
    pub fsyncs: u64,
    /// `FUSE_FSYNC` requests with the datasync flag (`fdatasync(2)`, `RWF_DSYNC` completions).
    pub fdatasyncs: u64,
    /// Writes and size changes since the last fsync of the file (0: `current` is all durable).
    pub unsynced_changes: u64,
    /// Size of the file as reads see it.
    pub current_len: u64,
    /// Size of the file a power cut now would leave.
    pub durable_len: u64,
}

impl FileStats {
    /// `fsyncs + fdatasyncs`.
    pub fn syncs(&self) -> u64 {
        self.fsyncs + self.fdatasyncs
    }
}

/// The durable state of a whole filesystem: what a power cut left. Mount it again with
/// [`Image::mount`](crate::Image::mount); read it with [`Image::files`] and [`Image::file`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    /// Every directory (except the root) and file, by path relative to the root. A `BTreeMap`
    /// of paths lists each parent before its children.
    entries: BTreeMap<PathBuf, ImageEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ImageEntry {
    Dir { perm: u16 },
    File { perm: u16, bytes: Vec<u8> },
}

impl Image {
    /// Every regular file and its durable bytes, by path relative to the root, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &[u8])> {
        self.entries.iter().filter_map(|(p, e)| match e {
            ImageEntry::File { bytes, .. } => Some((p.as_path(), bytes.as_slice())),
            ImageEntry::Dir { .. } => None,
        })
    }

    /// Every directory except the root, by path relative to the root, in path order.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.entries.iter().filter_map(|(p, e)| match e {
            ImageEntry::Dir { .. } => Some(p.as_path()),
            ImageEntry::File { .. } => None,
        })
    }

    /// The durable bytes of the regular file at `rel` (relative to the root), if there is one.
    pub fn file(&self, rel: impl AsRef<Path>) -> Option<&[u8]> {
        match self.entries.get(&normalize(rel.as_ref())?)? {
            ImageEntry::File { bytes, .. } => Some(bytes),
            ImageEntry::Dir { .. } => None,
        }
    }
}

/// `rel` as a plain relative path (no `.`, no leading `/`), or `None` if it climbs out (`..`).
fn normalize(rel: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    crtime: SystemTime,
}

impl Meta {
    fn new(perm: u16, uid: u32, gid: u32) -> Meta {
        let now = SystemTime::now();
        Meta {
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
        }
    }
}

#[derive(Debug, Default)]
struct FileData {
    current: Vec<u8>,
    durable: Vec<u8>,
    writes: u64,
    bytes_written: u64,
    fsyncs: u64,
    fdatasyncs: u64,
    unsynced_changes: u64,
}

#[derive(Debug)]
enum Body {
    Dir(BTreeMap<OsString, u64>),
    File(FileData),
}

#[derive(Debug)]
struct Node {
    /// The directory holding the node (for a removed node: the one that last held it).
    parent: u64,
    /// The node's name in `parent` (for a removed node: its last name).
    name: OsString,
    /// Whether a directory entry names the node (false once unlinked or replaced).
    linked: bool,
    meta: Meta,
    body: Body,
}

/// The whole filesystem. Nodes are never freed while mounted (there is no `forget` handling):
/// a removed file keeps its counters, so totals never go down.
#[derive(Debug)]
pub(crate) struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    next_fh: u64,
    /// Set by a power cut: from then on nothing becomes durable.
    dead: bool,
    dir_syncs: u64,
}

pub(crate) type Res<T> = Result<T, Errno>;

/// The owner given to a new node: the uid and gid of the request that creates it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl State {
    /// An empty filesystem: a root directory owned by the current user.
    pub(crate) fn new() -> State {
        // SAFETY: getuid and getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: OsString::new(),
                linked: true,
                meta: Meta::new(0o755, uid, gid),
                body: Body::Dir(BTreeMap::new()),
            },
        );
        State {
            nodes,
            next_ino: ROOT + 1,
            next_fh: 1,
            dead: false,
            dir_syncs: 0,
        }
    }

    /// A filesystem whose contents are exactly `image`, every file's durable bytes also its
    /// current bytes.
    pub(crate) fn from_image(image: &Image) -> State {
        let mut st = State::new();
        let (uid, gid) = (st.nodes[&ROOT].meta.uid, st.nodes[&ROOT].meta.gid);
        for (path, entry) in &image.entries {
            let parent = match path.parent() {
                Some(p) => st
                    .resolve(p)
                    .expect("an image lists each parent directory before its children"),
                None => ROOT,
            };
            let name = path.file_name().expect("image paths name an entry");
            let (perm, body) = match entry {
                ImageEntry::Dir { perm } => (*perm, Body::Dir(BTreeMap::new())),
                ImageEntry::File { perm, bytes } => (
                    *perm,
                    Body::File(FileData {
                        current: bytes.clone(),
                        durable: bytes.clone(),
                        ..FileData::default()
                    }),
                ),
            };
            st.insert(parent, name, Meta::new(perm, uid, gid), body)
                .expect("image entries are unique and their parents are directories");
        }
        st
    }

    /// Marks the power cut: later writes and syncs change nothing durable.
    pub(crate) fn cut_power(&mut self) {
        self.dead = true;
    }

    /// The durable state: every linked directory and file, files with their durable bytes.
    pub(crate) fn image(&self) -> Image {
        let mut entries = BTreeMap::new();
        let mut stack = vec![(ROOT, PathBuf::new())];
        while let Some((ino, path)) = stack.pop() {
            let Body::Dir(children) = &self.nodes[&ino].body else {
                continue;
            };
            for (name, &child) in children {
                let node = &self.nodes[&child];
                let p = path.join(name);
                match &node.body {
                    Body::Dir(_) => {
                        entries.insert(
                            p.clone(),
                            ImageEntry::Dir {
                                perm: node.meta.perm,
                            },
                        );
                        stack.push((child, p));
                    }
                    Body::File(f) => {
                        entries.insert(
                            p,
                            ImageEntry::File {
                                perm: node.meta.perm,
                                bytes: f.durable.clone(),
                            },
                        );
                    }
                }
            }
        }
        Image { entries }
    }

    /// The node at `rel` (relative to the root), if any.
    pub(crate) fn resolve(&self, rel: &Path) -> Option<u64> {
        let mut ino = ROOT;
        for c in normalize(rel)?.components() {
            let Body::Dir(children) = &self.nodes[&ino].body else {
                return None;
            };
            ino = *children.get(c.as_os_str())?;
        }
        Some(ino)
    }

    /// The path of `ino` relative to the root (for a removed node, the path it last had).
    fn path_of(&self, mut ino: u64) -> PathBuf {
        let mut names = Vec::new();
        while ino != ROOT {
            let node = &self.nodes[&ino];
            names.push(node.name.clone());
            ino = node.parent;
        }
        names.iter().rev().collect()
    }

    /// Counters of the regular file at `rel`.
    pub(crate) fn stats_of(&self, rel: &Path) -> Option<FileStats> {
        self.file_stats(self.resolve(rel)?)
    }

    fn file_stats(&self, ino: u64) -> Option<FileStats> {
        match &self.nodes.get(&ino)?.body {
            Body::File(f) => Some(FileStats {
                writes: f.writes,
                bytes_written: f.bytes_written,
                fsyncs: f.fsyncs,
                fdatasyncs: f.fdatasyncs,
                unsynced_changes: f.unsynced_changes,
                current_len: f.current.len() as u64,
                durable_len: f.durable.len() as u64,
            }),
            Body::Dir(_) => None,
        }
    }

    /// Every regular file this filesystem has held, removed ones included (under their last
    /// path, flagged `false`), in inode order.
    pub(crate) fn all_file_stats(&self) -> Vec<(PathBuf, bool, FileStats)> {
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        inos.sort_unstable();
        inos.into_iter()
            .filter_map(|ino| {
                let stats = self.file_stats(ino)?;
                Some((self.path_of(ino), self.nodes[&ino].linked, stats))
            })
            .collect()
    }

    /// `FUSE_FSYNCDIR` requests seen.
    pub(crate) fn dir_syncs(&self) -> u64 {
        self.dir_syncs
    }

    // --------------------------------------------------------------------------------------
    // Operations, in FUSE terms. Each returns an errno on failure.
    // --------------------------------------------------------------------------------------

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn children(&self, ino: u64) -> Res<&BTreeMap<OsString, u64>> {
        match &self.node(ino)?.body {
            Body::Dir(c) => Ok(c),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn children_mut(&mut self, ino: u64) -> Res<&mut BTreeMap<OsString, u64>> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(c) => Ok(c),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Res<&mut FileData> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Errno::EISDIR),
        }
    }

    /// The attributes of `ino` as FUSE replies them.
    pub(crate) fn attr(&self, ino: u64) -> Res<FileAttr> {
        let node = self.node(ino)?;
        let (kind, size, nlink) = match &node.body {
            Body::Dir(c) => {
                let subdirs = c
                    .values()
                    .filter(|i| matches!(self.nodes[i].body, Body::Dir(_)))
                    .count();
                (FileType::Directory, BLOCK as u64, 2 + subdirs as u32)
            }
            Body::File(f) => (FileType::RegularFile, f.current.len() as u64, 1),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.meta.atime,
            mtime: node.meta.mtime,
            ctime: node.meta.ctime,
            crtime: node.meta.crtime,
            kind,
            perm: node.meta.perm,
            nlink: if node.linked { nlink } else { 0 },
            uid: node.meta.uid,
            gid: node.meta.gid,
            rdev: 0,
            blksize: BLOCK,
            flags: 0,
        })
    }

    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> Res<u64> {
        self.children(parent)?
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    fn insert(&mut self, parent: u64, name: &OsStr, meta: Meta, body: Body) -> Res<u64> {
        if name.is_empty() || name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        if self.children(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                parent,
                name: name.to_owned(),
                linked: true,
                meta,
                body,
            },
        );
        self.children_mut(parent)?.insert(name.to_owned(), ino);
        self.touch(parent);
        Ok(ino)
    }

    fn touch(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            n.meta.mtime = now;
            n.meta.ctime = now;
        }
    }

    pub(crate) fn mkdir(&mut self, parent: u64, name: &OsStr, perm: u16, owner: Owner) -> Res<u64> {
        self.insert(
            parent,
            name,
            Meta::new(perm, owner.uid, owner.gid),
            Body::Dir(BTreeMap::new()),
        )
    }

    /// Creates a regular file, or opens the existing one (`EEXIST` if `exclusive`).
    pub(crate) fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        perm: u16,
        owner: Owner,
        exclusive: bool,
        truncate: bool,
    ) -> Res<u64> {
        if let Ok(ino) = self.lookup(parent, name) {
            if exclusive {
                return Err(Errno::EEXIST);
            }
            if truncate {
                self.set_size(ino, 0)?;
            } else {
                self.file_mut(ino)?;
            }
            return Ok(ino);
        }
        self.insert(
            parent,
            name,
            Meta::new(perm, owner.uid, owner.gid),
            Body::File(FileData::default()),
        )
    }

    pub(crate) fn new_fh(&mut self) -> u64 {
        self.next_fh += 1;
        self.next_fh
    }

    pub(crate) fn read(&self, ino: u64, offset: u64, size: u32) -> Res<Vec<u8>> {
        match &self.node(ino)?.body {
            Body::File(f) => {
                let len = f.current.len() as u64;
                let start = offset.min(len) as usize;
                let end = offset.saturating_add(size as u64).min(len) as usize;
                Ok(f.current[start..end].to_vec())
            }
            Body::Dir(_) => Err(Errno::EISDIR),
        }
    }

    pub(crate) fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Res<u32> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_FILE)
            .ok_or(Errno::EFBIG)?;
        let f = self.file_mut(ino)?;
        if (f.current.len() as u64) < end {
            f.current.resize(end as usize, 0);
        }
        f.current[offset as usize..end as usize].copy_from_slice(data);
        f.writes += 1;
        f.bytes_written += data.len() as u64;
        f.unsynced_changes += 1;
        let node = self.node_mut(ino)?;
        let now = SystemTime::now();
        node.meta.mtime = now;
        node.meta.ctime = now;
        Ok(data.len() as u32)
    }

    /// Truncates or extends (with zeros) the current bytes; durable at the next fsync.
    pub(crate) fn set_size(&mut self, ino: u64, size: u64) -> Res<()> {
        if size > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let f = self.file_mut(ino)?;
        if f.current.len() as u64 != size {
            f.current.resize(size as usize, 0);
            f.unsynced_changes += 1;
        }
        self.touch(ino);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn set_meta(
        &mut self,
        ino: u64,
        perm: Option<u16>,
        uid: Option<u32>,
        gid: Option<u32>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Res<()> {
        let meta = &mut self.node_mut(ino)?.meta;
        if let Some(p) = perm {
            meta.perm = p;
        }
        if let Some(u) = uid {
            meta.uid = u;
        }
        if let Some(g) = gid {
            meta.gid = g;
        }
        if let Some(t) = atime {
            meta.atime = t;
        }
        if let Some(t) = mtime {
            meta.mtime = t;
        }
        meta.ctime = SystemTime::now();
        Ok(())
    }

    /// `FUSE_FSYNC`: the file's current bytes become durable (unless the power is cut).
    pub(crate) fn fsync(&mut self, ino: u64, datasync: bool) -> Res<()> {
        let dead = self.dead;
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => {
                if datasync {
                    f.fdatasyncs += 1;
                } else {
                    f.fsyncs += 1;
                }
                if !dead {
                    f.durable.clone_from(&f.current);
                    f.unsynced_changes = 0;
                }
            }
            // The kernel sends FSYNCDIR for directories; namespace changes are durable anyway.
            Body::Dir(_) => self.dir_syncs += 1,
        }
        Ok(())
    }

    /// `FUSE_FSYNCDIR`: counted; the namespace is durable at once in this model.
    pub(crate) fn fsyncdir(&mut self, ino: u64) -> Res<()> {
        self.children(ino)?;
        self.dir_syncs += 1;
        Ok(())
    }

    /// Removes the entry `name` of `parent`, which must be a directory (`dir`) or not.
    pub(crate) fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Res<()> {
        let ino = self.lookup(parent, name)?;
        match (&self.node(ino)?.body, dir) {
            (Body::Dir(c), true) if !c.is_empty() => return Err(Errno::ENOTEMPTY),
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (Body::File(_), true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.children_mut(parent)?.remove(name);
        self.touch(parent);
        self.unlink_node(ino);
        Ok(())
    }

    fn unlink_node(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.linked = false;
            n.meta.ctime = SystemTime::now();
        }
    }

    /// Renames `parent/name` to `newparent/newname`, replacing a compatible target unless
    /// `noreplace`.
    pub(crate) fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        noreplace: bool,
    ) -> Res<()> {
        if newname.is_empty() || newname.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let ino = self.lookup(parent, name)?;
        self.children(newparent)?;
        let src_is_dir = matches!(self.node(ino)?.body, Body::Dir(_));
        if src_is_dir {
            // A directory cannot move into itself or below itself.
            let mut at = newparent;
            loop {
                if at == ino {
                    return Err(Errno::EINVAL);
                }
                if at == ROOT {
                    break;
                }
                at = self.node(at)?.parent;
            }
        }
        if let Ok(target) = self.lookup(newparent, newname) {
            if target == ino {
                return Ok(());
            }
            if noreplace {
                return Err(Errno::EEXIST);
            }
            match (&self.node(target)?.body, src_is_dir) {
                (Body::Dir(c), true) if !c.is_empty() => return Err(Errno::ENOTEMPTY),
                (Body::Dir(_), false) => return Err(Errno::EISDIR),
                (Body::File(_), true) => return Err(Errno::ENOTDIR),
                _ => {}
            }
            self.children_mut(newparent)?.remove(newname);
            self.unlink_node(target);
        }
        self.children_mut(parent)?.remove(name);
        self.children_mut(newparent)?
            .insert(newname.to_owned(), ino);
        let node = self.node_mut(ino)?;
        node.parent = newparent;
        node.name = newname.to_owned();
        node.meta.ctime = SystemTime::now();
        self.touch(parent);
        self.touch(newparent);
        Ok(())
    }

    /// Directory entries of `ino` from index `offset` on, with `.` and `..` first: (inode, kind,
    /// name).
    pub(crate) fn dir_entries(&self, ino: u64, offset: u64) -> Res<Vec<(u64, FileType, OsString)>> {
        let children = self.children(ino)?;
        let parent = self.node(ino)?.parent;
        let mut all = vec![
            (ino, FileType::Directory, OsString::from(".")),
            (parent, FileType::Directory, OsString::from("..")),
        ];
        for (name, &child) in children {
            let kind = match self.nodes[&child].body {
                Body::Dir(_) => FileType::Directory,
                Body::File(_) => FileType::RegularFile,
            };
            all.push((child, kind, name.clone()));
        }
        Ok(all.into_iter().skip(offset as usize).collect())
    }

    /// Bytes held in current file contents (for `statfs`).
    pub(crate) fn used_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match &n.body {
                Body::File(f) if n.linked => f.current.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Number of nodes (for `statfs`).
    pub(crate) fn node_count(&self) -> u64 {
        self.nodes.values().filter(|n| n.linked).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn writes_become_durable_only_on_fsync() {
        let mut st = State::new();
        let d = st.mkdir(ROOT, os("d"), 0o755, Owner::default()).unwrap();
        let f = st
            .create(d, os("f"), 0o644, Owner::default(), true, false)
            .unwrap();
        st.write(f, 0, b"hello").unwrap();
        assert_eq!(st.image().file("d/f"), Some(&b""[..]));
        st.fsync(f, true).unwrap();
        assert_eq!(st.image().file("d/f"), Some(&b"hello"[..]));
        st.write(f, 5, b" world").unwrap();
        st.set_size(f, 64).unwrap();
        let s = st.stats_of(Path::new("d/f")).unwrap();
        assert_eq!(
            (s.writes, s.fdatasyncs, s.fsyncs, s.unsynced_changes),
            (2, 1, 0, 2)
        );
        assert_eq!((s.current_len, s.durable_len), (64, 5));
        st.fsync(f, false).unwrap();
        assert_eq!(st.image().file("d/f").unwrap().len(), 64);
        assert_eq!(st.stats_of(Path::new("d/f")).unwrap().unsynced_changes, 0);
    }

    #[test]
    fn after_the_cut_nothing_becomes_durable() {
        let mut st = State::new();
        let f = st
            .create(ROOT, os("f"), 0o644, Owner::default(), true, false)
            .unwrap();
        st.write(f, 0, b"kept").unwrap();
        st.fsync(f, false).unwrap();
        st.cut_power();
        st.write(f, 0, b"lost").unwrap();
        st.fsync(f, true).unwrap();
        assert_eq!(st.read(f, 0, 10).unwrap(), b"lost");
        assert_eq!(st.image().file("f"), Some(&b"kept"[..]));
    }

    #[test]
    fn image_round_trip_and_namespace_ops() {
        let mut st = State::new();
        let a = st.mkdir(ROOT, os("a"), 0o700, Owner::default()).unwrap();
        let b = st.mkdir(a, os("b"), 0o755, Owner::default()).unwrap();
        let f = st
            .create(b, os("f"), 0o600, Owner::default(), true, false)
            .unwrap();
        st.write(f, 0, b"x").unwrap();
        st.fsync(f, false).unwrap();
        let g = st
            .create(a, os("g"), 0o644, Owner::default(), true, false)
            .unwrap();
        assert_eq!(
            st.create(a, os("g"), 0o644, Owner::default(), true, false),
            Err(Errno::EEXIST)
        );
        st.rename(a, os("g"), b, os("f"), false).unwrap(); // replaces f
        assert_eq!(st.lookup(b, os("f")), Ok(g));
        assert_eq!(
            st.rename(ROOT, os("a"), b, os("x"), false),
            Err(Errno::EINVAL)
        );
        assert_eq!(st.remove(ROOT, os("a"), true), Err(Errno::ENOTEMPTY));
        let img = st.image();
        assert_eq!(
            img.dirs().collect::<Vec<_>>(),
            [Path::new("a"), Path::new("a/b")]
        );
        assert_eq!(
            img.files().collect::<Vec<_>>(),
            [(Path::new("a/b/f"), &b""[..])]
        );
        let again = State::from_image(&img);
        assert_eq!(again.image(), img);
        let stats = st.all_file_stats();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].0, Path::new("a/b/f"));
        assert!(!stats[0].1, "the replaced file is no longer linked");
        assert_eq!(stats[0].2.fsyncs, 1);
    }

    #[test]
    fn dir_entries_page_from_an_offset() {
        let mut st = State::new();
        st.create(ROOT, os("x"), 0o644, Owner::default(), true, false)
            .unwrap();
        st.mkdir(ROOT, os("y"), 0o755, Owner::default()).unwrap();
        let names: Vec<_> = st
            .dir_entries(ROOT, 1)
            .unwrap()
            .into_iter()
            .map(|(_, _, n)| n)
            .collect();
        assert_eq!(names, ["..", "x", "y"]);
        assert_eq!(st.attr(ROOT).unwrap().nlink, 3);
    }
}
