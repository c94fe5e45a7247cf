import CDRM
import CGPIOD
import CLibUSB
import CSeccomp
import CSerialPort

/// The device libraries linked into the supervisor, with the versions actually loaded at run
/// time (not the headers'): what the host adapter will drive hardware through.
public struct DeviceLibraries: Sendable, Equatable {
    public var libusb: String
    public var libgpiod: String
    public var libserialport: String
    public var libdrm: String
    public var libseccomp: String

    public static func loaded() -> DeviceLibraries {
        let usb = libusb_get_version().pointee
        let seccomp = seccomp_version().pointee
        // libdrm has no version call; drmAvailable() proves it is linked and says whether a DRM device is here.
        let drm = drmAvailable() != 0 ? "linked, DRM device present" : "linked, no DRM device"
        return DeviceLibraries(
            libusb: "\(usb.major).\(usb.minor).\(usb.micro)",
            libgpiod: String(cString: gpiod_version_string()),
            libserialport: String(cString: sp_get_package_version_string()),
            libdrm: drm,
            libseccomp: "\(seccomp.major).\(seccomp.minor).\(seccomp.micro)")
    }

    public var summary: String {
        "libusb \(libusb), libgpiod \(libgpiod), libserialport \(libserialport), libdrm \(libdrm), libseccomp \(libseccomp)"
    }
}
