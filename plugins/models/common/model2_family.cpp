#include "model2_family.h"

namespace bachlab::plugins {

Model2Options read_model2_options(sdk::Params& params, const Model2Options& defaults) {
  Model2Options o = defaults;
  o.filters(plugins::read_per_layer(params, "filters", o.filters(), {1, 4096}, "convolution"));
  o.kernel_size(params.get_int("kernel_size", o.kernel_size(), {1, 64}));
  o.strides(params.get_int("strides", o.strides(), {1, 64}));
  o.padding(plugins::read_padding(params, "padding", o.padding()));
  o.pool_size(params.get_int("pool_size", o.pool_size(), {1, 64}));
  o.pool_padding(plugins::read_padding(params, "pool_padding", o.pool_padding()));
  o.hidden_units(plugins::read_per_layer(params, "hidden_units", o.hidden_units(), {1, 65536}, "dense hidden layer"));
  o.activation(plugins::read_activation(params, "activation", o.activation()));
  return o;
}

plugins::ConvNetArchitecture model2_architecture(const Model2Options& o) {
  plugins::ConvNetArchitecture arch;
  arch.blocks = plugins::single_conv_blocks(o.filters(), o.kernel_size(), o.strides(), o.padding(), o.pool_size(),
                                        o.pool_padding());
  arch.hidden_units = o.hidden_units();
  arch.activation = o.activation();
  return arch;
}

}  // namespace bachlab::plugins
