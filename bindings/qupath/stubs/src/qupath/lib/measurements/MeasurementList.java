package qupath.lib.measurements;
public interface MeasurementList extends java.io.Serializable, AutoCloseable {
    void put(String name, double value);
    /** In QuPath 0.6 as get(String); here for the fake-QuPath test. */
    double get(String name);
    java.util.Map<String, Number> asMap();
    @Override
    default void close() {}
}
