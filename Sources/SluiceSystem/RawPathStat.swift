import SluiceCore
import SystemPackage

extension RawPath {
    /// stat(2) of the path, or lstat(2) where `followingLinks` is false,
    /// through swift-system's `Stat` (EINTR retried; the errno thrown).
    /// The path's bytes go to the call as they are, UTF-8 or not.
    package func stat(followingLinks: Bool = true) throws(Errno) -> Stat {
        let path = withCString { FilePath(platformString: $0) }
        return try path.stat(followTargetSymlink: followingLinks)
    }
}
