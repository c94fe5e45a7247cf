import Foundation
import Glibc

/// A small JSON record in a file of its own — an approval, the fault latch, an action request
/// or its reply — replaced whole: written beside it and renamed over it, so a reader (another
/// process, often) sees the old record or the new one, never half of one.
public enum JSONRecordFile {
    public static func write<T: Encodable>(_ value: T, to path: String) throws(JournalError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.dateEncodingStrategy = .iso8601
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent("." + url.lastPathComponent + ".tmp").path
        do { try encoder.encode(value).write(to: URL(fileURLWithPath: temporary)) } catch {
            throw JournalError(path: path, message: "cannot write: \(error.localizedDescription)")
        }
        guard rename(temporary, path) == 0 else { throw JournalError(path: path, message: "cannot replace: \(String(cString: strerror(errno)))") }
    }

    /// nil when there is no such file; throws when there is one that is not such a record.
    public static func read<T: Decodable>(_ type: T.Type, from path: String) throws(JournalError) -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do { return try decoder.decode(type, from: data) } catch {
            throw JournalError(path: path, message: "not a \(T.self) record")
        }
    }
}
