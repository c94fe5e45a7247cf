import Dispatch
import Foundation
import Glibc
import LoopCore
import PNGCodec

/// Writes a frame as a PNG file, replacing the file atomically, and only when the frame
/// changed since the last one written. The encoding (libpng's simplified API) is done on the
/// encoder's own thread, never the loop's: `emit` hands the frame over and returns; a frame
/// that could not be written is reported by the next `emit` or by `finish`.
public struct PNGSink: FrameSink {
    public let path: String
    /// Where the encodings are made; the MCAP recorder takes each frame's bytes from it.
    public let encoder: PNGEncoder
    private var lastHash: String?

    public init(path: String, encoder: PNGEncoder = PNGEncoder()) {
        self.path = path
        self.encoder = encoder
    }

    public mutating func emit(_ frame: Frame) throws -> String? {
        try encoder.failure()
        guard frame.hash != lastHash else { return nil }
        encoder.encode(frame, to: path)
        lastHash = frame.hash
        return path
    }

    /// Every frame handed over is written.
    public mutating func finish() throws { try encoder.drain() }

    /// Encode XRGB8888 pixels as an 8-bit RGB PNG at `path` (written beside it, then renamed).
    public static func write(_ frame: Frame, to path: String) throws {
        try replace(path, with: encode(frame, path: path))
    }

    /// The PNG of a frame. `path` only names the file in an error.
    public static func encode(_ frame: Frame, path: String) throws -> [UInt8] {
        let rgb = [UInt8](unsafeUninitializedCapacity: frame.pixels.count * 3) { out, count in
            frame.pixels.withUnsafeBufferPointer { px in
                for i in 0..<px.count {
                    let p = px[i]
                    out[3 * i] = UInt8(truncatingIfNeeded: p >> 16)
                    out[3 * i + 1] = UInt8(truncatingIfNeeded: p >> 8)
                    out[3 * i + 2] = UInt8(truncatingIfNeeded: p)
                }
            }
            count = frame.pixels.count * 3
        }
        do { return try PNG.encode(PNG.RGB(width: frame.width, height: frame.height, pixels: rgb)) } catch {
            throw PNGError(path: path, message: error.message)
        }
    }

    static func replace(_ path: String, with bytes: [UInt8]) throws {
        // A temporary name of its own: two writers of one panel (a supervisor restarted in the
        // same process while its predecessor's encoder finishes) never rename each other's.
        let temporary = path + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        do { try Data(bytes).write(to: URL(fileURLWithPath: temporary)) } catch {
            throw PNGError(path: path, message: "cannot write \(temporary): \(error.localizedDescription)")
        }
        guard rename(temporary, path) == 0 else { throw PNGError(path: path, message: "cannot rename \(temporary) into place") }
    }
}

/// Encodes frames to PNG on a thread of its own, in the order they were handed over, and keeps
/// the last few encodings until someone asks for them by the frame's hash (the MCAP recorder,
/// which records each frame beside its transition). When frames come faster than they encode
/// (a loop stepping back to back), at most `backlog` wait: the oldest waiting one is skipped
/// (the file on disk is always the newest), so neither memory nor the loop is held up.
public final class PNGEncoder: @unchecked Sendable {
    /// `bytes` is set before `done` is left and read only after it is waited for; `started` and
    /// `skipped` are read and written under the encoder's lock.
    private final class Job: @unchecked Sendable {
        let done = DispatchGroup()
        var bytes: [UInt8]?
        var started = false
        var skipped = false
    }
    private let queue = DispatchQueue(label: "worldos.panel-png")
    private let lock = NSLock()
    private var jobs: [(hash: String, job: Job)] = []
    private var firstFailure: PNGError?
    /// Encodings kept for the asking; older ones are let go.
    private let keep = 8
    public let backlog: Int
    /// Frames skipped because `backlog` others were waiting.
    public private(set) var skipped = 0

    public init(backlog: Int = 4) { self.backlog = backlog }

    /// Encode `frame` and write it to `path`, on the encoder's thread.
    public func encode(_ frame: Frame, to path: String) {
        let job = Job()
        job.done.enter()
        lock.withLock {
            let waiting = jobs.filter { !$0.job.started && !$0.job.skipped }
            if waiting.count >= backlog, let oldest = waiting.first?.job {
                oldest.skipped = true
                skipped += 1
            }
            jobs.append((frame.hash, job))
            if jobs.count > keep { jobs.removeFirst(jobs.count - keep) }
        }
        queue.async { [self] in
            defer { job.done.leave() }
            guard lock.withLock({ () -> Bool in job.started = !job.skipped; return job.started }) else { return }
            do {
                let bytes = try PNGSink.encode(frame, path: path)
                try PNGSink.replace(path, with: bytes)
                job.bytes = bytes
            } catch let error as PNGError {
                lock.withLock { firstFailure = firstFailure ?? error }
            } catch {}
        }
    }

    /// The PNG of the frame with `hash` among the last few handed over: ready, still pending
    /// (with `wait`, waited for), or unavailable (never handed over, let go, skipped, or it could
    /// not be encoded).
    public func png(hash: String, wait: Bool) -> FrameEncoding {
        guard let job = lock.withLock({ jobs.last(where: { $0.hash == hash })?.job }) else { return .unavailable }
        if wait { job.done.wait() } else if job.done.wait(timeout: .now()) == .timedOut { return .pending }
        return job.bytes.map(FrameEncoding.ready) ?? .unavailable
    }

    /// Wait for every frame handed over; throw the first that could not be written.
    public func drain() throws {
        queue.sync {}
        try failure()
    }

    /// The first frame that could not be written, once (thrown), so a failing disk is said.
    func failure() throws {
        if let error = lock.withLock({ () -> PNGError? in defer { firstFailure = nil }; return firstFailure }) { throw error }
    }
}

public struct PNGError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "cannot write PNG \(path): \(message)" }
}
