// PatchdSystem: giving a directory tree to another owner without following its symlinks.
import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// lchown of `path` and everything under it to `uid:gid`, never following a symlink (a link
/// inside the tree is re-owned itself, its target is not). Entries that already have that
/// owner are only looked at.
public func changeOwnerOfTree(_ path: String, uid: uid_t, gid: gid_t) throws(SystemError) {
    try checked("lchown (tree)", path) { patchd_chown_tree(path, uid, gid) }
}
