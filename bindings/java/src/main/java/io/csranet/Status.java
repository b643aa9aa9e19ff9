package io.csranet;

/** The status codes of the C API ({@code CsraStatus} in {@code csranet.h}). */
public enum Status {
    /** Success. */
    OK(0),
    /** A required pointer argument was NULL. */
    NULL_ARGUMENT(1),
    /** An argument was out of range or inconsistent. */
    INVALID_ARGUMENT(2),
    /** A file could not be read or written. */
    IO_ERROR(3),
    /** A weights file or buffer was malformed or did not fit the model; the model is unchanged. */
    BAD_WEIGHTS(4),
    /** The progress callback asked to stop. */
    CANCELLED(5),
    /** The requested data was not kept. */
    NOT_AVAILABLE(6),
    /** A computation produced NaN or infinity. */
    NUMERIC_ERROR(7),
    /** A feature not compiled into the native library (e.g. CUDA). */
    UNSUPPORTED(8),
    /** An internal error or a caught panic in the native library. */
    INTERNAL_ERROR(9),
    /** A code this version of the binding does not know. */
    UNKNOWN(-1);

    private final int code;

    Status(int code) {
        this.code = code;
    }

    /** The numeric value of the C enum. */
    public int code() {
        return code;
    }

    /** The C name, e.g. {@code CSRA_IO_ERROR}. */
    public String cName() {
        return this == UNKNOWN ? "unknown CsraStatus" : "CSRA_" + name();
    }

    /** The status for a C value; {@link #UNKNOWN} for values this binding does not know. */
    public static Status fromCode(int code) {
        for (Status s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        return UNKNOWN;
    }
}
