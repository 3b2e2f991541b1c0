// PatchdSystem: walks over directory trees that never follow their symlinks: ownership and disk usage.

package import CPatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// lchown of `path` and everything under it to `uid:gid`, never following a symlink (a link
/// inside the tree is re-owned itself, its target is not). Entries that already have that
/// owner are only looked at.
package func changeOwnerOfTree(_ path: String, uid: uid_t, gid: gid_t) throws(SystemError) {
    try checked("lchown (tree)", path) { patchd_chown_tree(path, uid, gid) }
}

/// The disk space (allocated blocks, so sparse files count for what they use) of `path` and
/// everything under it, not following symlinks or crossing into other mounts. When the walk
/// stops early (a path too long, an entry gone), `bytes` is what it counted up to there.
package func diskUsage(ofTree path: String) -> (bytes: Int64, complete: Bool) {
    var bytes: UInt64 = 0
    let rc = patchd_tree_usage(path, &bytes)
    return (Int64(clamping: bytes), rc == 0)
}
