import Foundation
import Glibc

/// A ledger's views directory as generations: one symlink per view naming its current generation
/// (`runs -> runs.3`), a new generation directory for each rebuild, the atomic swap of the symlink, the
/// sweep of generations nothing names, and the lock that keeps two processes from rebuilding at once.
/// ``Views`` decides when to rebuild; this owns where and how the directories change.
struct ViewGenerations: Sendable {
    let directory: URL

    func link(_ name: ViewName) -> URL { directory.appendingPathComponent(name.rawValue) }

    /// The generation directory the view's symlink names, or nil.
    func current(_ name: ViewName) -> URL? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link(name).path) else { return nil }
        return directory.appendingPathComponent(target)
    }

    /// The view's generation numbers on disk.
    func numbers(_ name: ViewName) -> [Int] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return entries.compactMap { e in
            guard e.hasPrefix(name.rawValue + ".") else { return nil }
            return Int(e.dropFirst(name.rawValue.count + 1))
        }
    }

    /// A fresh directory for the view's next generation (emptied if a crashed rebuild left it).
    func next(_ name: ViewName) -> URL {
        let dir = directory.appendingPathComponent("\(name.rawValue).\((numbers(name).max() ?? 0) + 1)")
        try? FileManager.default.removeItem(at: dir)
        return dir
    }

    /// A directory for scratch folds of this process (`--as-of`, verify); swept once the process is gone.
    func scratch() -> URL {
        directory.appendingPathComponent(".scratch-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    /// Points the view's symlink at `dir`: a new symlink renamed over the old one (atomic).
    func swap(_ name: ViewName, to dir: URL) throws {
        let tmp = directory.appendingPathComponent(".\(name.rawValue).link.\(getpid())")
        try? FileManager.default.removeItem(at: tmp)
        guard symlink(dir.lastPathComponent, tmp.path) == 0 else {
            throw ViewError(.invalidInput, view: name.rawValue, "cannot create \(tmp.path): \(String(cString: strerror(errno)))")
        }
        guard rename(tmp.path, link(name).path) == 0 else {
            throw ViewError(.invalidInput, view: name.rawValue, "cannot swap \(link(name).path): \(String(cString: strerror(errno)))")
        }
        let fd = Glibc.open(directory.path, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            Glibc.close(fd)
        }
    }

    /// Deletes generations no symlink names (left by a crashed rebuild, or replaced by one). Only called
    /// with the rebuild lock held, so no rebuild is writing them.
    func removeOrphans() {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let inUse = Set(ViewName.allCases.compactMap { current($0)?.lastPathComponent })
        for e in entries where !inUse.contains(e) {
            let isGeneration = ViewName.allCases.contains { e.hasPrefix($0.rawValue + ".") && Int(e.dropFirst($0.rawValue.count + 1)) != nil }
            let isScratch = e.hasPrefix(".scratch-") || e.hasPrefix(".verify-")
            if isGeneration || (isScratch && !Self.ownerAlive(e)) {
                try? FileManager.default.removeItem(at: directory.appendingPathComponent(e))
            }
        }
    }

    /// Scratch directories are named `.scratch-<pid>-…`: keep those of live processes.
    static func ownerAlive(_ name: String) -> Bool {
        let parts = name.split(separator: "-")
        guard parts.count >= 2, let pid = Int32(parts[1]) else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    /// Runs `body` holding the views' rebuild lock, waiting for it as long as another process holds it.
    func withRebuildLock<T>(_ body: () throws -> T) throws -> T {
        // Waiting, `locked` returns only once the lock is held (or throws).
        try locked(wait: true, body)!
    }

    /// Runs `body` holding the views' rebuild lock if no other process holds it; nil when one does.
    func ifRebuildLockFree<T>(_ body: () throws -> T) throws -> T? {
        try locked(wait: false, body)
    }

    private func locked<T>(wait: Bool, _ body: () throws -> T) throws -> T? {
        let path = directory.appendingPathComponent(".rebuild.lock").path
        let fd = Glibc.open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else {
            throw ViewError(.invalidInput, view: nil, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { Glibc.close(fd) }
        while flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            if !wait && errno == EWOULDBLOCK { return nil }
            throw ViewError(.invalidInput, view: nil, "cannot lock \(path): \(String(cString: strerror(errno)))")
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
