import Foundation

/// A Parquet file of one row group, written whole (https://parquet.apache.org/docs/file-format/):
/// each column one uncompressed data page in PLAIN encoding, the optional ones with their
/// definition levels, and the file's metadata in Thrift's compact protocol. Enough for a table
/// of measurements that pandas, polars or Arrow read as they are; no reader here.
public struct ParquetTable {
    public enum Column {
        case int64(String, [Int64])
        case utf8(String, [String])
        /// Nil where a row has no value.
        case double(String, [Double?])

        var name: String {
            switch self { case .int64(let n, _), .utf8(let n, _), .double(let n, _): n }
        }
        var count: Int {
            switch self { case .int64(_, let v): v.count; case .utf8(_, let v): v.count; case .double(_, let v): v.count }
        }
        /// Parquet's physical type: INT64 2, DOUBLE 5, BYTE_ARRAY 6.
        var physical: Int32 {
            switch self { case .int64: 2; case .double: 5; case .utf8: 6 }
        }
        var optional: Bool { if case .double = self { true } else { false } }
    }

    public var columns: [Column]
    public init(columns: [Column]) { self.columns = columns }

    public struct Mismatch: Error, CustomStringConvertible {
        public var description: String
    }

    public func bytes() throws(Mismatch) -> [UInt8] {
        let rows = columns.first?.count ?? 0
        if let odd = columns.first(where: { $0.count != rows }) {
            throw Mismatch(description: "column \(odd.name) has \(odd.count) values, the table \(rows) rows")
        }
        var file: [UInt8] = Array("PAR1".utf8)
        var chunks: [(offset: Int, size: Int)] = []
        for column in columns {
            let data = Self.page(column)
            var header = Thrift()
            header.i32(1, 0)                       // type: DATA_PAGE
            header.i32(2, Int32(data.count))       // uncompressed_page_size
            header.i32(3, Int32(data.count))       // compressed_page_size
            header.structure(5) { h in            // data_page_header
                h.i32(1, Int32(rows))              // num_values (nulls included)
                h.i32(2, 0)                        // encoding: PLAIN
                h.i32(3, 3)                        // definition_level_encoding: RLE
                h.i32(4, 3)                        // repetition_level_encoding: RLE
            }
            header.stop()
            chunks.append((file.count, header.bytes.count + data.count))
            file += header.bytes + data
        }
        var meta = Thrift()
        meta.i32(1, 1)                             // version
        meta.list(2, of: 12, count: columns.count + 1) { l in   // schema: the root, then each column
            l.element { s in
                s.binary(4, "schema")
                s.i32(5, Int32(columns.count))     // num_children
            }
            for column in columns {
                l.element { s in
                    s.i32(1, column.physical)
                    s.i32(3, column.optional ? 1 : 0)  // repetition_type: OPTIONAL or REQUIRED
                    s.binary(4, column.name)
                    if case .utf8 = column { s.i32(6, 0) }  // converted_type: UTF8
                }
            }
        }
        meta.i64(3, Int64(rows))                   // num_rows
        meta.list(4, of: 12, count: 1) { l in      // row_groups
            l.element { g in
                g.list(1, of: 12, count: columns.count) { c in
                    for (column, chunk) in zip(columns, chunks) {
                        c.element { cc in
                            cc.i64(2, Int64(chunk.offset))   // file_offset
                            cc.structure(3) { m in           // meta_data
                                m.i32(1, column.physical)
                                m.list(2, of: 5, count: 2) { e in e.i32Element(0); e.i32Element(3) }  // PLAIN, RLE
                                m.list(3, of: 8, count: 1) { p in p.binaryElement(column.name) }      // path_in_schema
                                m.i32(4, 0)                              // codec: UNCOMPRESSED
                                m.i64(5, Int64(rows))                    // num_values
                                m.i64(6, Int64(chunk.size))              // total_uncompressed_size
                                m.i64(7, Int64(chunk.size))              // total_compressed_size
                                m.i64(9, Int64(chunk.offset))            // data_page_offset
                            }
                        }
                    }
                }
                g.i64(2, Int64(chunks.reduce(0) { $0 + $1.size }))  // total_byte_size
                g.i64(3, Int64(rows))                               // num_rows
            }
        }
        meta.binary(6, "worldos")                  // created_by
        meta.stop()
        file += meta.bytes
        file += withUnsafeBytes(of: UInt32(meta.bytes.count).littleEndian, Array.init)
        file += Array("PAR1".utf8)
        return file
    }

    /// A column's page data: definition levels (optional columns: 4-byte length, then one
    /// bit-packed run of 1-bit levels), then the present values, PLAIN.
    static func page(_ column: Column) -> [UInt8] {
        var out: [UInt8] = []
        func le<T: FixedWidthInteger>(_ v: T) { out += withUnsafeBytes(of: v.littleEndian, Array.init) }
        switch column {
        case .int64(_, let values): for v in values { le(v) }
        case .utf8(_, let values):
            for v in values { le(UInt32(v.utf8.count)); out += Array(v.utf8) }
        case .double(_, let values):
            let groups = (values.count + 7) / 8
            var levels = Thrift.varint(UInt64(groups) << 1 | 1)
            var packed = [UInt8](repeating: 0, count: groups)
            for (i, v) in values.enumerated() where v != nil { packed[i / 8] |= 1 << (i % 8) }
            levels += packed
            le(UInt32(levels.count))
            out += levels
            for case let v? in values { le(v.bitPattern) }
        }
        return out
    }
}

/// Thrift's compact protocol, as much of it as Parquet's metadata needs.
struct Thrift {
    var bytes: [UInt8] = []
    private var last: [Int16] = [0]

    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v, out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        out.append(UInt8(v))
        return out
    }
    static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

    private mutating func field(_ id: Int16, _ type: UInt8) {
        let delta = id - last[last.count - 1]
        if delta > 0 && delta <= 15 { bytes.append(UInt8(delta) << 4 | type) } else {
            bytes.append(type)
            bytes += Self.varint(Self.zigzag(Int64(id)))
        }
        last[last.count - 1] = id
    }

    mutating func i32(_ id: Int16, _ v: Int32) { field(id, 5); bytes += Self.varint(Self.zigzag(Int64(v))) }
    mutating func i64(_ id: Int16, _ v: Int64) { field(id, 6); bytes += Self.varint(Self.zigzag(v)) }
    mutating func binary(_ id: Int16, _ s: String) { field(id, 8); binaryElement(s) }
    mutating func binaryElement(_ s: String) { bytes += Self.varint(UInt64(s.utf8.count)) + Array(s.utf8) }
    mutating func i32Element(_ v: Int32) { bytes += Self.varint(Self.zigzag(Int64(v))) }
    mutating func stop() { bytes.append(0) }

    mutating func structure(_ id: Int16, _ body: (inout Thrift) -> Void) {
        field(id, 12)
        element(body)
    }

    /// A struct as a list's element: its fields, then STOP.
    mutating func element(_ body: (inout Thrift) -> Void) {
        last.append(0)
        body(&self)
        last.removeLast()
        stop()
    }

    mutating func list(_ id: Int16, of type: UInt8, count: Int, _ body: (inout Thrift) -> Void) {
        field(id, 9)
        if count < 15 { bytes.append(UInt8(count) << 4 | type) } else { bytes.append(0xF0 | type); bytes += Self.varint(UInt64(count)) }
        body(&self)
    }
}
