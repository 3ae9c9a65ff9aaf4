import SluiceCore
import SystemPackage

extension RawPath {
    /// stat(2) of the path, or lstat(2) where `followingLinks` is false,
    /// through swift-system's `Stat` (EINTR retried; the errno thrown). The
    /// path's bytes go to the call exactly as they are, UTF-8 or not, with no
    /// `FilePath` normalisation (which would drop a trailing slash, and so
    /// turn lstat of "link/" into lstat of "link" and stat of "file/" from
    /// ENOTDIR into a success).
    package func stat(followingLinks: Bool = true) throws(Errno) -> Stat {
        try withCString { (path) throws(Errno) -> Stat in try Stat(path, followTargetSymlink: followingLinks) }
    }
}
